import ServiceKit
import Testing

@Suite("byte sizes")
struct ByteSizeTests {
    @Test("units parse as operators write them", arguments: [
        ("20GiB", 20 << 30), ("512MiB", 512 << 20), ("1G", 1 << 30), ("1g", 1_000_000_000), ("5GB", 5_000_000_000),
        ("4096", 4096), ("1.5KiB", 1536), (" 2 MiB ", 2 << 20), ("0", 0), ("10B", 10),
    ])
    func parses(text: String, bytes: Int) throws {
        #expect(try ByteSize(parsing: text).bytes == bytes)
    }

    @Test("nonsense is refused with the offending text", arguments: ["", "GiB", "-1GiB", "lots", "1XB", "nan", "1e400"])
    func refuses(text: String) {
        #expect(throws: ByteSize.ParseError.invalid(text)) { try ByteSize(parsing: text) }
    }

    @Test("sizes print in binary units")
    func prints() {
        #expect(ByteSize(bytes: 20 << 30).description == "20GiB")
        #expect(ByteSize(bytes: 1536).description == "1.5KiB")
        #expect(ByteSize(bytes: 100).description == "100B")
    }
}
