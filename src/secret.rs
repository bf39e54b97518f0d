//! A credential that cannot leak: `Debug` prints a placeholder and there is no `Serialize`,
//! so it cannot end up in a log line or a stored record by accident. A leaf module: the
//! config reads secrets, credentials and providers send them.

use std::fmt;

#[derive(Clone)]
pub struct Secret {
    value: String,
    /// Written into the config file as a literal rather than as a `${VAR}` reference.
    literal: bool,
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            value: value.into(),
            literal: false,
        }
    }

    /// A secret read from the config; `literal` when it was not a `${VAR}` reference.
    pub(crate) fn from_config(value: String, literal: bool) -> Self {
        Secret { value, literal }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_literal(&self) -> bool {
        self.literal
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
