//! A wrapper for values that must never reach a log, an error message or a file: tokens,
//! passwords, connection strings that may embed either. `Debug` and `Display` print a
//! placeholder, so a `#[derive(Debug)]` on a struct holding one, a `{:?}` in a `tracing`
//! field or an `anyhow` context cannot leak the value; code that needs it calls
//! [`Secret::expose`], which makes every use easy to find.

use std::fmt;

/// What `Debug` and `Display` print instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// A secret value of type `T` (usually `String`). Deliberately not `Serialize`: writing a
/// secret anywhere must go through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that must send it (a header, a driver's
    /// connection options); never for printing.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value, for handing it to an API that takes ownership.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)] // read only through Debug
    struct Config {
        token: Secret<String>,
        nested: Option<Secret<String>>,
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("canary-1234".to_owned());
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{secret:#?}"), "Secret(<redacted>)");
        let config = Config {
            token: secret.clone(),
            nested: Some(secret.clone()),
        };
        assert!(!format!("{config:?} {config:#?}").contains("canary"));
        assert_eq!(secret.expose(), "canary-1234");
        assert_eq!(secret.into_inner(), "canary-1234");
    }
}
