//! Strict parsing of `application/x-www-form-urlencoded` request bodies.

use std::collections::HashMap;

use super::OAuthError;

/// The parameters of a token request. Each name occurs at most once (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a form body. A repeated parameter, invalid UTF-8 or more than 32
    /// parameters is `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request("the body is not valid UTF-8"));
        }
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
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
    }
}
