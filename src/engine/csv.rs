//! CSV cells for every table Likeness writes (export results, the map, duplicates): quoted
//! as RFC 4180 asks, and defused so that a spreadsheet never runs a cell as a formula.

/// One CSV cell holding `text`.
///
/// A cell a spreadsheet would execute (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return; OWASP's "CSV injection" guidance) gets a leading `'`, which
/// spreadsheets show as text and do not evaluate. A cell with a comma, quote or line
/// break is quoted, its quotes doubled.
pub fn field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_written_as_text_and_separators_are_quoted() {
        assert_eq!(field("rose"), "rose");
        assert_eq!(field("/photos/a, b.jpg"), "\"/photos/a, b.jpg\"");
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("+1+1"), "'+1+1");
        assert_eq!(field("-1+1"), "'-1+1");
        assert_eq!(field("@SUM(1+1)"), "'@SUM(1+1)");
        assert_eq!(
            field("=HYPERLINK(\"http:evil.example\";\"open\")"),
            "\"'=HYPERLINK(\"\"http:evil.example\"\";\"\"open\"\")\""
        );
        assert_eq!(field("\tx"), "'\tx");
    }
}
