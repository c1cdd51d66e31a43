//! A URL query string read exactly as the signature reads it, for the handlers.

use std::collections::BTreeMap;

use crate::canonical::percent_decode;

/// Why a URL query string cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter given more than once. The canonical query sorts parameters, so
    /// `a=1&a=2` and `a=2&a=1` carry the same signature: whichever copy a handler took, an
    /// attacker could swap them.
    #[error("the query string gives `{0}` more than once; give each parameter once")]
    Duplicate(String),
    /// A name or value that is not UTF-8 once percent-decoded.
    #[error("the query string parameter `{0}` is not UTF-8 once percent-decoded")]
    NotUtf8(String),
}

/// The parameters of a URL query string, decoded as SigV4's canonical query decodes them:
/// `%XX` sequences decoded, `+` kept as a plus sign (SDKs send a space as `%20`). Two query
/// strings with the same canonical form give the same parameters, so a handler reads what was
/// signed; a parameter given twice is refused because sorting makes its order unsigned.
pub fn query_params(query: &str) -> Result<BTreeMap<String, String>, QueryError> {
    query_params_with_lists(query, &[]).map(|(params, _)| params)
}

/// Like [`query_params`], but the parameters named in `lists` (list members, which SDKs send
/// as `types=a&types=b`) may repeat: their values come back sorted, since the signature does
/// not fix their order; a handler must read them as a set.
pub fn query_params_with_lists(query: &str, lists: &[&str]) -> Result<QueryParams, QueryError> {
    let mut params = BTreeMap::new();
    let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = String::from_utf8(percent_decode(name))
            .map_err(|e| QueryError::NotUtf8(String::from_utf8_lossy(e.as_bytes()).into_owned()))?;
        let value = String::from_utf8(percent_decode(value))
            .map_err(|_| QueryError::NotUtf8(name.clone()))?;
        if lists.contains(&name.as_str()) {
            listed.entry(name).or_default().push(value);
            continue;
        }
        if params.contains_key(&name) {
            return Err(QueryError::Duplicate(name));
        }
        params.insert(name, value);
    }
    for values in listed.values_mut() {
        values.sort();
    }
    Ok((params, listed))
}

/// Single parameters by name, and list parameters' values by name.
pub type QueryParams = (BTreeMap<String, String>, BTreeMap<String, Vec<String>>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_canonical_query_signs() {
        let params = query_params("nextToken=a%2Bb&maxResults=10&k=a+b&e").unwrap_or_default();
        assert_eq!(params.get("nextToken").map(String::as_str), Some("a+b"));
        // `+` is a plus sign, as the canonical query encodes it (`%2B`), not a space.
        assert_eq!(params.get("k").map(String::as_str), Some("a+b"));
        assert_eq!(params.get("e").map(String::as_str), Some(""));
        assert_eq!(
            query_params("a=1&b=2&a=3"),
            Err(QueryError::Duplicate("a".into()))
        );
        let (single, lists) =
            query_params_with_lists("types=b&maxResults=5&types=a", &["types"]).unwrap_or_default();
        assert_eq!(single.get("maxResults").map(String::as_str), Some("5"));
        assert_eq!(
            lists.get("types"),
            Some(&vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(query_params("a=%FF"), Err(QueryError::NotUtf8("a".into())));
    }
}
