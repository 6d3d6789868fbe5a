//! The vendor key, wrapped so that it cannot leak through `Debug`, `Display`
//! or a log line by accident: the only way to the text is [`ApiKey::expose`],
//! which is called where the `Authorization` header is built and nowhere else.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Trims surrounding white space (a key pasted with a newline is the most
    /// common cause of a 401 the vendors document).
    pub fn new(key: &str) -> Option<ApiKey> {
        let key = key.trim();
        if key.is_empty() {
            None
        } else {
            Some(ApiKey(key.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("  sk-very-secret\n").unwrap();
        assert_eq!(key.expose(), "sk-very-secret");
        assert!(!format!("{key:?}").contains("sk-very-secret"));
        assert!(ApiKey::new(" \n").is_none());
    }
}
