//! What records and manifests say about an encrypted object: the format
//! and whom it was encrypted to, as public keys (or `scrypt` for a
//! passphrase). Read from storage, it is validated like any other field:
//! it ends up in messages.

use crate::exit::{Exit, fail};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The only format.
pub const AGE: &str = "age";

/// What stands for a passphrase among recipients.
pub const SCRYPT: &str = "scrypt";

/// The most recipients a manifest may name.
const MAX_RECIPIENTS: usize = 64;

/// An object's encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// `age`.
    pub format: String,
    /// Public keys (`age1…`), or `["scrypt"]`.
    pub recipients: Vec<String>,
}

impl Encryption {
    /// age to these recipients.
    pub fn age(recipients: Vec<String>) -> Encryption {
        Encryption {
            format: AGE.to_string(),
            recipients,
        }
    }

    /// Reads and checks the field's JSON (from a record or a manifest).
    pub fn from_value(value: &serde_json::Value) -> Result<Encryption> {
        let e: Encryption = serde_json::from_value(value.clone())
            .map_err(|e| fail(Exit::Failed, format!("bad \"encryption\": {e}")))?;
        e.check()?;
        Ok(e)
    }

    /// Checks the format and that every recipient is a public key.
    pub fn check(&self) -> Result<()> {
        if self.format != AGE {
            return Err(fail(
                Exit::Failed,
                format!("unknown encryption format {:?}", self.format),
            ));
        }
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            return Err(fail(
                Exit::Failed,
                format!(
                    "\"encryption\" names {} recipients (1 to {MAX_RECIPIENTS})",
                    self.recipients.len()
                ),
            ));
        }
        for r in &self.recipients {
            let ok = (r == SCRYPT && self.recipients.len() == 1)
                || age::x25519::Recipient::from_str(r).is_ok();
            if !ok {
                return Err(fail(
                    Exit::Failed,
                    format!(
                        "\"encryption\" names a recipient that is not an age public key: {:?}",
                        r.escape_debug().to_string()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// As a record field.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_fields_are_refused() {
        let key = age::x25519::Identity::generate().to_public().to_string();
        let good = Encryption::age(vec![key.clone()]);
        assert_eq!(Encryption::from_value(&good.to_value()).unwrap(), good);
        assert!(Encryption::from_value(&Encryption::age(vec!["scrypt".into()]).to_value()).is_ok());
        for bad in [
            serde_json::json!({"format": "gpg", "recipients": [key]}),
            serde_json::json!({"format": "age", "recipients": []}),
            serde_json::json!({"format": "age", "recipients": ["age1\u{1b}[2J"]}),
            serde_json::json!({"format": "age", "recipients": ["scrypt", key]}),
            serde_json::json!({"format": "age", "recipients": [key], "key": "x"}),
            serde_json::json!("age"),
        ] {
            assert!(Encryption::from_value(&bad).is_err(), "{bad}");
        }
    }
}
