//! The deb822 control-file format (dpkg status, Release, Packages, apt
//! sources and preferences): paragraphs of `Name: value` fields with folded
//! continuation lines. Every field remembers its line, so errors can name it.
//!
//! The parser borrows from its input and never allocates per line, which
//! matters for 50 MB `Packages` indexes.

/// A field of a paragraph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    /// The value as written, continuation lines included (with their
    /// newlines and leading space); see [`Field::value`].
    pub raw: &'a str,
    pub line: usize,
}

impl<'a> Field<'a> {
    /// The value with surrounding whitespace trimmed. Multi-line values keep
    /// their newlines.
    pub fn value(&self) -> &'a str {
        self.raw.trim()
    }
}

/// One paragraph (stanza).
#[derive(Clone, Debug, Default)]
pub struct Paragraph<'a> {
    pub fields: Vec<Field<'a>>,
    /// Line number of the first field.
    pub line: usize,
}

impl<'a> Paragraph<'a> {
    /// The value of a field, matched case-insensitively as dpkg and apt do.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.field(name).map(|f| f.value())
    }

    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// A syntax error at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Iterates over the paragraphs of a deb822 text. Lines starting with `#`
/// are comments (allowed by apt's sources and preferences).
pub struct Paragraphs<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    failed: bool,
}

pub fn paragraphs(text: &str) -> Paragraphs<'_> {
    Paragraphs { text, pos: 0, line: 0, failed: false }
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut para = Paragraph::default();
        let bytes = self.text.as_bytes();
        // Start and end (exclusive) of the current field's raw value.
        let mut current: Option<(usize, &'a str, usize, usize)> = None; // (line, name, start, end)
        let finish = |para: &mut Paragraph<'a>, cur: Option<(usize, &'a str, usize, usize)>, text: &'a str| {
            if let Some((line, name, s, e)) = cur {
                para.fields.push(Field { name, raw: &text[s..e], line });
            }
        };
        while self.pos < bytes.len() {
            let start = self.pos;
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            self.pos = end + 1;
            self.line += 1;
            let line = &self.text[start..end];
            if line.trim().is_empty() {
                if current.is_some() || !para.fields.is_empty() {
                    finish(&mut para, current.take(), self.text);
                    return Some(Ok(para));
                }
                continue;
            }
            let first = bytes[start];
            if first == b'#' {
                continue;
            }
            if first == b' ' || first == b'\t' {
                match &mut current {
                    Some((_, _, _, e)) => *e = end,
                    None => {
                        self.failed = true;
                        return Some(Err(SyntaxError {
                            line: self.line,
                            message: "continuation line outside a field".into(),
                        }));
                    }
                }
                continue;
            }
            let Some(colon) = memchr::memchr(b':', line.as_bytes()) else {
                self.failed = true;
                return Some(Err(SyntaxError { line: self.line, message: format!("expected `Field: value`, found `{}`", truncate(line)) }));
            };
            let name = &line[..colon];
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
                self.failed = true;
                return Some(Err(SyntaxError { line: self.line, message: format!("invalid field name `{}`", truncate(name)) }));
            }
            finish(&mut para, current.take(), self.text);
            if para.fields.is_empty() {
                para.line = self.line;
            }
            current = Some((self.line, name, start + colon + 1, end));
        }
        finish(&mut para, current.take(), self.text);
        if para.fields.is_empty() {
            None
        } else {
            Some(Ok(para))
        }
    }
}

fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paragraphs() {
        let text = "Package: a\nDescription: short\n long\n .\n more\n\n\n# c\nPackage: b\nDepends: x,\n  y\n";
        let ps: Vec<_> = paragraphs(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(ps[0].get("Description"), Some("short\n long\n .\n more"));
        assert_eq!(ps[1].line, 9);
        assert_eq!(ps[1].field("Depends").unwrap().line, 10);
        assert_eq!(ps[1].get("Depends"), Some("x,\n  y"));
    }

    #[test]
    fn reports_line() {
        let e = paragraphs("Package: a\nbogus line\n").collect::<Result<Vec<_>, _>>().unwrap_err();
        assert_eq!(e.line, 2);
        let e = paragraphs(" cont\n").collect::<Result<Vec<_>, _>>().unwrap_err();
        assert_eq!(e.line, 1);
    }
}
