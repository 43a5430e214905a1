//! Strict parsing of `application/x-www-form-urlencoded` request bodies.

use std::borrow::Cow;
use std::collections::HashMap;

use percent_encoding::percent_decode;

use super::OAuthError;

/// One name or value, `+` and percent-escapes decoded; `None` when the
/// decoded bytes are not UTF-8 (replacing them would change what was sent).
fn decode(raw: &[u8]) -> Option<Cow<'_, str>> {
    let plus_as_space: Cow<'_, [u8]> = if raw.contains(&b'+') {
        raw.iter()
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect::<Vec<u8>>()
            .into()
    } else {
        raw.into()
    };
    match plus_as_space {
        Cow::Borrowed(b) => percent_decode(b).decode_utf8().ok(),
        Cow::Owned(b) => percent_decode(&b)
            .decode_utf8()
            .ok()
            .map(|s| Cow::Owned(s.into_owned())),
    }
}

/// The parameters of a token request. Each name occurs at most once (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a form body. A repeated parameter, invalid UTF-8 (raw or
    /// percent-encoded) or more than 32 parameters is `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request("the body is not valid UTF-8"));
        }
        let mut map = HashMap::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let (Some(name), Some(value)) = (decode(name), decode(value)) else {
                return Err(OAuthError::invalid_request(
                    "a parameter is not valid UTF-8 once percent-decoded",
                ));
            };
            if map.len() >= 32 {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            if map.contains_key(name.as_ref()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {:?} is given more than once",
                    truncate(&name)
                )));
            }
            map.insert(name.into_owned(), value.into_owned());
        }
        Ok(Params(map))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// At most 64 characters of untrusted text, for error descriptions.
pub fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let e = Params::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert!(e.description.contains("grant_type"));
        let p = Params::parse(b"a=1&b=&c=x%2Fy+z").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x/y z"));
        assert!(Params::parse(&[0xff, 0xfe]).is_err());
        // Percent-encoded bytes must decode to UTF-8 too; nothing is replaced.
        assert!(Params::parse(b"x=%FF").is_err());
        assert!(Params::parse(b"%C3=1").is_err());
        let p = Params::parse(b"e=%C3%A9&&f&g=a%2Bb+c").unwrap();
        assert_eq!(p.get("e"), Some("\u{e9}"));
        assert_eq!(p.get("f"), None);
        assert_eq!(p.get("g"), Some("a+b c"));
    }
}
