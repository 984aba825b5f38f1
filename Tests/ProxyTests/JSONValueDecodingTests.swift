import Foundation
import OpenAIAPI
import Testing

/// Request bodies decode to the JSON kinds they spell: no string read as a number or bool, no 0/1 as a bool, empty
/// objects and arrays told apart (JSONValue tries the kinds in an order chosen for speed).
@Suite("JSON bodies decode kind for kind")
struct JSONValueDecodingTests {
    @Test("every kind, and values that look like another kind")
    func kinds() throws {
        let body = #"""
            {"s": "x", "n": "1", "t": "true", "z": "null", "i": 0, "one": 1, "f": -2.5e3, "b": false, "c": true, "null": null,
             "o": {}, "a": [], "aa": [[]], "ao": [{}], "nested": {"m": [{"role": "user", "content": ""}, 7, [true, "7"]]}}
            """#
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(body.utf8))
        let expected: JSONValue = .object([
            "s": .string("x"), "n": .string("1"), "t": .string("true"), "z": .string("null"), "i": .number(0), "one": .number(1),
            "f": .number(-2500), "b": .bool(false), "c": .bool(true), "null": .null, "o": .object([:]), "a": .array([]),
            "aa": .array([.array([])]), "ao": .array([.object([:])]),
            "nested": .object(["m": .array([.object(["role": .string("user"), "content": .string("")]), .number(7),
                                             .array([.bool(true), .string("7")])])]),
        ])
        #expect(decoded == expected)
        for (text, value) in [("[]", JSONValue.array([])), ("{}", .object([:])), ("\"\"", .string("")), ("0", .number(0)),
                              ("false", .bool(false)), ("null", .null)] {
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) == value, "\(text)")
        }
    }

    @Test("what is not JSON is an error")
    func invalid() {
        for text in ["", "{", "{\"a\" 1}", "tru", "1e400"] {
            #expect(throws: (any Error).self, "\(text)") { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }
        }
    }
}
