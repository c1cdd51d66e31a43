//! Wildcard patterns: `*` matches any run of characters (including none), `?` matches exactly one.
//!
//! A pattern is compiled once into tokens; literal parts that came from `${*}`, `${?}` or a policy
//! variable's value are literal tokens, so they never act as wildcards.

/// A compiled wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    shape: Shape,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    /// `*`: everything.
    Any,
    /// No wildcard at all.
    Exact(Box<str>),
    /// `literal*`.
    Prefix(Box<str>),
    /// `*literal`.
    Suffix(Box<str>),
    /// Anything else.
    Tokens(Box<[Token]>),
}

/// One piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// Text that must appear as written.
    Literal(Box<str>),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters.
    Run,
}

impl Pattern {
    /// Compiles text in which `*` and `?` are wildcards.
    pub(crate) fn new(text: &str) -> Self {
        let mut tokens = Vec::new();
        push_wild_text(&mut tokens, text);
        Self::from_tokens(tokens)
    }

    /// Compiles a token list (literal tokens next to each other are joined).
    pub(crate) fn from_tokens(tokens: Vec<Token>) -> Self {
        let mut joined: Vec<Token> = Vec::with_capacity(tokens.len());
        for token in tokens {
            match (joined.last_mut(), token) {
                (Some(Token::Literal(prev)), Token::Literal(next)) => {
                    let mut s = String::with_capacity(prev.len() + next.len());
                    s.push_str(prev);
                    s.push_str(&next);
                    *prev = s.into_boxed_str();
                }
                // Two runs in a row match what one run matches.
                (Some(Token::Run), Token::Run) => {}
                (_, token) => joined.push(token),
            }
        }
        let shape = match joined.as_slice() {
            [] => Shape::Exact("".into()),
            [Token::Run] => Shape::Any,
            [Token::Literal(s)] => Shape::Exact(s.clone()),
            [Token::Literal(s), Token::Run] => Shape::Prefix(s.clone()),
            [Token::Run, Token::Literal(s)] => Shape::Suffix(s.clone()),
            _ => Shape::Tokens(joined.into_boxed_slice()),
        };
        Self { shape }
    }

    /// Whether the pattern matches all of `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        match &self.shape {
            Shape::Any => true,
            Shape::Exact(s) => **s == *text,
            Shape::Prefix(s) => text.starts_with(&**s),
            Shape::Suffix(s) => text.ends_with(&**s),
            Shape::Tokens(tokens) => match_tokens(tokens, text),
        }
    }
}

/// Appends the tokens of `text`, in which `*` and `?` are wildcards.
pub(crate) fn push_wild_text(tokens: &mut Vec<Token>, text: &str) {
    let mut literal_start = 0;
    for (i, c) in text.char_indices() {
        let token = match c {
            '*' => Token::Run,
            '?' => Token::One,
            _ => continue,
        };
        if i > literal_start {
            tokens.push(Token::Literal(
                text.get(literal_start..i).unwrap_or_default().into(),
            ));
        }
        tokens.push(token);
        literal_start = i + 1;
    }
    if literal_start < text.len() {
        tokens.push(Token::Literal(
            text.get(literal_start..).unwrap_or_default().into(),
        ));
    }
}

/// Greedy matching that backtracks only to the most recent `*`; for patterns made of runs,
/// single characters and literals this is exact, and takes at most O(len(pattern) × len(text)).
fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let mut ti = 0; // byte offset in text, always on a character boundary
    let mut ki = 0; // token index
    let mut resume: Option<(usize, usize)> = None; // (token after the last `*`, text offset it took)
    loop {
        let rest = text.get(ti..).unwrap_or_default();
        let advanced = match tokens.get(ki) {
            Some(Token::Run) => {
                resume = Some((ki + 1, ti));
                ki += 1;
                continue;
            }
            Some(Token::One) => match rest.chars().next() {
                Some(c) => {
                    ti += c.len_utf8();
                    true
                }
                None => false,
            },
            Some(Token::Literal(s)) => {
                if rest.starts_with(&**s) {
                    ti += s.len();
                    true
                } else {
                    false
                }
            }
            None => {
                if rest.is_empty() {
                    return true;
                }
                false
            }
        };
        if advanced {
            ki += 1;
            continue;
        }
        // Mismatch: let the last `*` take one more character, if there is one.
        match resume {
            Some((after_run, taken)) => match text.get(taken..).and_then(|r| r.chars().next()) {
                Some(c) => {
                    let next = taken + c.len_utf8();
                    resume = Some((after_run, next));
                    ki = after_run;
                    ti = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).matches(text)
    }

    #[test]
    fn star_and_question_mark() {
        assert!(m("*", ""));
        assert!(m("*", "anything/at:all"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbcd"));
        assert!(m("*log*", "app-logs/x"));
        assert!(m("dev?", "dev1"));
        assert!(!m("dev?", "dev12"));
        assert!(!m("dev?", "dev"));
        assert!(m("b/*/test/*", "b/1/2/test/object.jpg"));
        assert!(!m("b/*/test/*", "b/test/object.jpg"));
        assert!(m("?é*", "xé"));
        assert!(m("a**b", "ab"));
        assert!(m("*a*a*a*", "banana a"));
        assert!(!m("", "x"));
        assert!(m("", ""));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The matcher agrees with a regular expression built from the same pattern.
        #[test]
        fn agrees_with_a_regex_oracle(pattern in "[ab*?/:é]{0,12}", text in "[ab/:é]{0,16}") {
            let regex: String = pattern
                .chars()
                .map(|c| match c {
                    '*' => ".*".to_owned(),
                    '?' => ".".to_owned(),
                    c => regex::escape(&c.to_string()),
                })
                .collect();
            let oracle = regex::Regex::new(&format!("(?s)^{regex}$")).unwrap();
            proptest::prop_assert_eq!(Pattern::new(&pattern).matches(&text), oracle.is_match(&text), "pattern {:?} text {:?}", pattern, text);
        }
    }

    #[test]
    fn literal_tokens_are_never_wildcards() {
        let pattern = Pattern::from_tokens(vec![
            Token::Literal("reports".into()),
            Token::Literal("*".into()),
        ]);
        assert!(pattern.matches("reports*"));
        assert!(!pattern.matches("reportsX"));
    }
}
