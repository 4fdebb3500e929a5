//! Query strings the way dockerd reads them: repeated keys, and booleans where "1",
//! "true" and "True" are true and absent, "", "0", "false" are false.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

#[derive(Debug, Default, Clone)]
pub struct Q(pub Vec<(String, String)>);

impl Q {
    pub fn parse(query: Option<&str>) -> Q {
        Q(url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn bool(&self, key: &str) -> bool {
        matches!(
            self.get(key).map(|v| v.to_ascii_lowercase()).as_deref(),
            Some("1") | Some("true") | Some("yes")
        )
    }

    /// A boolean whose absence means true (e.g. `stream` on attach).
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None | Some("") => default,
            Some(_) => self.bool(key),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Q, ApiError> {
        Ok(Q::parse(parts.uri.query()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_and_repeats() {
        let q = Q::parse(Some("a=1&b=False&c=&names=x&names=y%2Fz"));
        assert!(q.bool("a"));
        assert!(!q.bool("b"));
        assert!(!q.bool("c"));
        assert!(q.bool_or("missing", true));
        assert!(!q.bool_or("b", true));
        assert_eq!(q.all("names"), vec!["x", "y/z"]);
    }
}
