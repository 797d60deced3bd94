//! A SQL tokenizer in the manner of libinjection: it reads a value as a SQL fragment, either
//! as it stands (a number or identifier context) or as if it continued an open string (the
//! value was pasted between quotes), and classifies each token.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A quoted string; `closed` is false when the input ended inside it.
    Str {
        /// Whether its closing quote was found.
        closed: bool,
    },
    /// A number, hex or binary literal, or `true`/`false`/`null`.
    Num,
    /// A variable: `@x`, `@@version`.
    Var,
    /// An identifier or unknown word.
    Word,
    /// A word followed by `(`.
    Func,
    /// A word that starts a statement: `select`, `insert`, `drop`, `exec`, `waitfor`...
    Statement,
    /// `union`.
    Union,
    /// `and`, `or`, `xor`, `&&`, `||`.
    Logic,
    /// `not`, `!`.
    Not,
    /// Comparison and arithmetic operators, including `like`, `in`, `is`, `between`.
    Op,
    /// Clause keywords that can follow a value: `order`, `group`, `having`, `limit`, `into`...
    Keyword,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `;`.
    Semicolon,
    /// `--`, `#` or an unterminated `/*` comment: the rest of the input.
    Comment,
    /// Anything else.
    Other,
}

/// One token: its kind and its text (lowercase for words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The kind.
    pub kind: Kind,
    /// The text: lowercase for words and keywords, what follows the marker for comments,
    /// empty for strings.
    pub text: String,
}

/// At most this many tokens are read: injections show themselves in the first few.
const MAX_TOKENS: usize = 128;

const STATEMENTS: &[&str] = &[
    "select", "insert", "update", "delete", "drop", "create", "alter", "exec", "execute",
    "declare", "truncate", "shutdown", "waitfor", "grant", "revoke", "rename", "call", "set",
    "handler", "load", "merge", "replace", "backup", "restore", "dbcc",
];
const LOGIC: &[&str] = &["and", "or", "xor"];
const OPERATORS: &[&str] = &[
    "like", "rlike", "regexp", "is", "in", "between", "div", "mod", "sounds", "escape", "glob",
    "match", "ilike", "similar",
];
const CONSTANTS: &[&str] = &["true", "false", "null", "unknown"];
const KEYWORDS: &[&str] = &[
    "order",
    "group",
    "having",
    "limit",
    "offset",
    "procedure",
    "into",
    "from",
    "where",
    "by",
    "asc",
    "desc",
    "all",
    "distinct",
    "top",
    "as",
    "case",
    "when",
    "then",
    "else",
    "end",
    "values",
    "table",
    "outfile",
    "dumpfile",
    "collate",
    "for",
    "fetch",
    "union",
    "intersect",
    "except",
    "minus",
    "join",
    "on",
    "using",
    "exists",
];
/// Words that take parentheses without being function calls.
const NOT_FUNCTIONS: &[&str] = &["in", "values", "not", "and", "or", "xor"];

/// Tokenizes `input`; with `open_quote`, the input is read as the rest of a string opened
/// with that quote, so the first token is that string.
pub fn tokenize(input: &str, open_quote: Option<char>) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    if let Some(quote) = open_quote {
        let (closed, next) = read_string(&chars, 0, quote);
        tokens.push(Token {
            kind: Kind::Str { closed },
            text: String::new(),
        });
        i = next;
    }
    while i < chars.len() && tokens.len() < MAX_TOKENS {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, used) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '\'' | '"' => {
                let (closed, end) = read_string(&chars, i + 1, c);
                (
                    Token {
                        kind: Kind::Str { closed },
                        text: String::new(),
                    },
                    end - i,
                )
            }
            '`' => {
                let end = find_from(&chars, i + 1, '`').map_or(chars.len(), |e| e + 1);
                (word_token(Kind::Word, &chars[i..end]), end - i)
            }
            '-' if next == Some('-') => (comment(&chars[i + 2..]), chars.len() - i),
            '#' => (comment(&chars[i + 1..]), chars.len() - i),
            '/' if next == Some('*') => (comment(&chars[i + 2..]), chars.len() - i),
            '@' => {
                let end = scan(&chars, i + 1, |c| c == '@' || is_ident(c));
                (word_token(Kind::Var, &chars[i..end]), end - i)
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let end = scan(&chars, i, |c| {
                    c.is_ascii_alphanumeric() || c == '.' || c == '_'
                });
                let text: String = chars[i..end].iter().collect();
                (classify_number(&text), end - i)
            }
            c if is_ident_start(c) => {
                // Prefixed string literals: N'...', X'...', B'...', _utf8'...'.
                let end = scan(&chars, i, |c| is_ident(c) || c == '.');
                if chars.get(end) == Some(&'\'')
                    && matches!(
                        chars[i..end]
                            .iter()
                            .collect::<String>()
                            .to_lowercase()
                            .as_str(),
                        "n" | "x" | "b" | "_utf8" | "_latin1" | "_binary"
                    )
                {
                    let (closed, after) = read_string(&chars, end + 1, '\'');
                    (
                        Token {
                            kind: Kind::Str { closed },
                            text: String::new(),
                        },
                        after - i,
                    )
                } else {
                    let followed_by_paren = chars[end..]
                        .iter()
                        .find(|c| !c.is_whitespace())
                        .is_some_and(|&c| c == '(');
                    (classify_word(&chars[i..end], followed_by_paren), end - i)
                }
            }
            _ => operator(&chars, i),
        };
        tokens.push(token);
        i += used.max(1);
    }
    tokens
}

/// A comment runs to the end of the input; its text is kept.
fn comment(rest: &[char]) -> Token {
    Token {
        kind: Kind::Comment,
        text: rest.iter().collect(),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn scan(chars: &[char], from: usize, pred: impl Fn(char) -> bool) -> usize {
    chars[from.min(chars.len())..]
        .iter()
        .position(|&c| !pred(c))
        .map_or(chars.len(), |p| from + p)
}

fn find_from(chars: &[char], from: usize, c: char) -> Option<usize> {
    chars
        .get(from..)?
        .iter()
        .position(|&x| x == c)
        .map(|p| from + p)
}

/// Reads a string body from `from` up to its closing `quote` (a doubled quote is an escaped
/// one); returns whether it closed and the index after it.
fn read_string(chars: &[char], from: usize, quote: char) -> (bool, usize) {
    let mut i = from;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return (true, i + 1);
        }
        i += 1;
    }
    (false, chars.len())
}

fn word_token(kind: Kind, chars: &[char]) -> Token {
    Token {
        kind,
        text: chars.iter().collect::<String>().to_lowercase(),
    }
}

/// Digits followed by letters (`90s`, `1st`) are words, not numbers.
fn classify_number(text: &str) -> Token {
    let lower = text.to_lowercase();
    let is_number = lower
        .strip_prefix("0x")
        .map(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        .or_else(|| {
            lower
                .strip_prefix("0b")
                .map(|b| !b.is_empty() && b.chars().all(|c| c == '0' || c == '1'))
        })
        .unwrap_or_else(|| {
            let mantissa_end = lower.find('e').unwrap_or(lower.len());
            let (mantissa, exponent) = lower.split_at(mantissa_end);
            mantissa.chars().all(|c| c.is_ascii_digit() || c == '.')
                && mantissa.chars().filter(|&c| c == '.').count() <= 1
                && (exponent.is_empty()
                    || exponent[1..].chars().all(|c| c.is_ascii_digit()) && exponent.len() > 1)
        });
    Token {
        kind: if is_number { Kind::Num } else { Kind::Word },
        text: lower,
    }
}

fn classify_word(chars: &[char], followed_by_paren: bool) -> Token {
    let text = chars.iter().collect::<String>().to_lowercase();
    let word = text.as_str();
    let kind = if word == "union" {
        Kind::Union
    } else if LOGIC.contains(&word) {
        Kind::Logic
    } else if word == "not" {
        Kind::Not
    } else if OPERATORS.contains(&word) {
        Kind::Op
    } else if CONSTANTS.contains(&word) {
        Kind::Num
    } else if followed_by_paren && !NOT_FUNCTIONS.contains(&word) && !STATEMENTS.contains(&word) {
        Kind::Func
    } else if STATEMENTS.contains(&word) {
        Kind::Statement
    } else if KEYWORDS.contains(&word) {
        Kind::Keyword
    } else {
        Kind::Word
    };
    Token { kind, text }
}

/// Punctuation and operators.
fn operator(chars: &[char], i: usize) -> (Token, usize) {
    let c = chars[i];
    let next = chars.get(i + 1).copied().unwrap_or('\0');
    let third = chars.get(i + 2).copied().unwrap_or('\0');
    let token = |kind, text: &str| Token {
        kind,
        text: text.to_string(),
    };
    match (c, next, third) {
        ('<', '=', '>') => (token(Kind::Op, "<=>"), 3),
        ('|', '|', _) => (token(Kind::Logic, "||"), 2),
        ('&', '&', _) => (token(Kind::Logic, "&&"), 2),
        ('!', '=', _)
        | ('<', '>', _)
        | ('<', '=', _)
        | ('>', '=', _)
        | ('=', '=', _)
        | (':', '=', _)
        | ('<', '<', _)
        | ('>', '>', _) => (token(Kind::Op, &format!("{c}{next}")), 2),
        ('!', _, _) => (token(Kind::Not, "!"), 1),
        ('=' | '<' | '>' | '+' | '-' | '*' | '/' | '%' | '^' | '|' | '&' | '~', _, _) => {
            (token(Kind::Op, &c.to_string()), 1)
        }
        ('(', _, _) => (token(Kind::LParen, "("), 1),
        (')', _, _) => (token(Kind::RParen, ")"), 1),
        (',', _, _) => (token(Kind::Comma, ","), 1),
        (';', _, _) => (token(Kind::Semicolon, ";"), 1),
        _ => (token(Kind::Other, &c.to_string()), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str, quote: Option<char>) -> Vec<Kind> {
        tokenize(input, quote).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn a_classic_tautology_tokenizes_as_string_logic_string_op_string() {
        use Kind::*;
        assert_eq!(
            kinds("1' or '1'='1", Some('\'')),
            vec![
                Str { closed: true },
                Logic,
                Str { closed: true },
                Op,
                Str { closed: false }
            ]
        );
    }

    #[test]
    fn doubled_quotes_stay_inside_strings() {
        assert_eq!(
            kinds("it''s fine", Some('\'')),
            vec![Kind::Str { closed: false }]
        );
    }

    #[test]
    fn words_numbers_functions_and_comments_are_told_apart() {
        use Kind::*;
        assert_eq!(
            kinds("90s 0x7e 1.5e3 sleep (5) @@version -- x", None),
            vec![Word, Num, Num, Func, LParen, Num, RParen, Var, Comment]
        );
        assert_eq!(
            kinds("union all select null#", None),
            vec![Union, Keyword, Statement, Num, Comment]
        );
    }

    #[test]
    fn prefixed_string_literals_are_strings() {
        assert_eq!(kinds("N'abc'", None), vec![Kind::Str { closed: true }]);
    }
}
