//! Leaf value types of the configuration: strings with `${VAR}` interpolation, secrets that
//! cannot leak, URLs and durations. Each validates itself while the YAML is deserialized, so
//! the parser attaches the field path, line and column to its error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

pub use crate::secret::Secret;

thread_local! {
    /// Variables visible to interpolation while one config is being deserialized. `None`
    /// reads the process environment; tests set a map so they never mutate the environment.
    static ENV_OVERRIDE: RefCell<Option<HashMap<String, String>>> = const { RefCell::new(None) };
}

/// Runs `f` with interpolation reading `vars` instead of the process environment.
pub(crate) fn with_env<T>(vars: Option<HashMap<String, String>>, f: impl FnOnce() -> T) -> T {
    ENV_OVERRIDE.with(|cell| *cell.borrow_mut() = vars);
    let out = f();
    ENV_OVERRIDE.with(|cell| *cell.borrow_mut() = None);
    out
}

fn lookup_var(name: &str) -> Option<String> {
    ENV_OVERRIDE.with(|cell| match cell.borrow().as_ref() {
        Some(vars) => vars.get(name).cloned(),
        None => std::env::var(name).ok(),
    })
}

/// Expands `${VAR}` and `${VAR:-default}` inside one string value. `$$` is a literal `$`.
/// Returns the expanded string and whether any reference was expanded.
pub(crate) fn interpolate(raw: &str) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(raw.len());
    let mut referenced = false;
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{raw}`: close it with `}}`"))?;
        let reference = &body[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{{reference}}}` is not a valid variable reference: use `${{NAME}}` or `${{NAME:-default}}`"
            ));
        }
        match (lookup_var(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set: export it, or write `${{{name}:-default}}`"
                ));
            }
        }
        referenced = true;
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok((out, referenced))
}

/// Deserializes a string scalar through `convert`. The conversion runs inside the parser's
/// visitor, so its error carries the exact field path, line and column.
pub(crate) fn from_str_scalar<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    convert: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct StrVisitor<F>(F, &'static str);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> de::Visitor<'de> for StrVisitor<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            (self.0)(value).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(StrVisitor(convert, expecting))
}

/// A string value after `${VAR}` interpolation.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigString(pub String);

impl<'de> Deserialize<'de> for ConfigString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_str_scalar(deserializer, "a string", |raw| {
            interpolate(raw).map(|(value, _)| ConfigString(value))
        })
    }
}

impl fmt::Debug for ConfigString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_str_scalar(deserializer, "a string or a `${VAR}` reference", |raw| {
            let (value, referenced) = interpolate(raw)?;
            Ok(Secret::from_config(value, !referenced && !raw.is_empty()))
        })
    }
}

/// An absolute `http`/`https` URL, checked where it is written.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(pub url::Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_str_scalar(deserializer, "an http(s) URL", |raw| {
            let (text, _) = interpolate(raw)?;
            parse_http_url(&text).map(HttpUrl)
        })
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

pub(crate) fn parse_http_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("`{text}` is not a valid URL ({e}): write it like `https://api.example.com`")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "`{text}` is not an http(s) URL with a host: write it like `https://api.example.com`"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL must not carry credentials: use the provider's `api_key`".to_string());
    }
    Ok(url)
}

/// A duration written as a number of seconds (`0.5`, `300`) or with a unit (`250ms`, `5m`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;
        impl<'de> de::Visitor<'de> for SecondsVisitor {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds or a duration such as `250ms`, `10s`, `5m`")
            }
            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(secs)))
            }
            fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Seconds, E> {
                u64::try_from(secs)
                    .map(|secs| Seconds(Duration::from_secs(secs)))
                    .map_err(|_| E::custom(format!("{secs} is negative: a duration is >= 0")))
            }
            fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Seconds, E> {
                Duration::try_from_secs_f64(secs).map(Seconds).map_err(|_| {
                    E::custom(format!(
                        "{secs} is not a duration: use a number of seconds >= 0"
                    ))
                })
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Seconds, E> {
                humantime::parse_duration(text.trim()).map(Seconds).map_err(|e| {
                    E::custom(format!(
                        "`{text}` is not a duration ({e}): use a number of seconds or a value like `250ms`, `10s`, `5m`"
                    ))
                })
            }
        }
        deserializer.deserialize_any(SecondsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn interpolates_set_unset_and_default() {
        let vars = env(&[("A", "one"), ("EMPTY", "")]);
        with_env(vars, || {
            assert_eq!(interpolate("x${A}y").unwrap(), ("xoney".into(), true));
            assert_eq!(interpolate("${B:-two}").unwrap(), ("two".into(), true));
            assert_eq!(interpolate("${B:-}").unwrap(), ("".into(), true));
            assert_eq!(interpolate("${EMPTY:-d}").unwrap(), ("".into(), true));
            assert_eq!(
                interpolate("plain $5 $$").unwrap(),
                ("plain $5 $".into(), false)
            );
            let err = interpolate("${B}").unwrap_err();
            assert!(err.contains("`B` is not set"), "{err}");
            assert!(interpolate("${A").unwrap_err().contains("unterminated"));
            assert!(
                interpolate("${A B}")
                    .unwrap_err()
                    .contains("not a valid variable")
            );
        });
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?}").contains("very"));
    }

    #[test]
    fn urls_need_scheme_and_host() {
        assert!(parse_http_url("https://api.example.com/v1").is_ok());
        assert!(parse_http_url("ftp://x").is_err());
        assert!(parse_http_url("api.example.com").is_err());
        assert!(parse_http_url("https://user:pw@x.com").is_err());
    }
}
