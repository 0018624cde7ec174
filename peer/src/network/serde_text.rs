//! Text forms of the parameters' fields in YAML: keys as PeerId strings, certificate chains as
//! PEM text, durations in humantime form (`1s`, `500ms`, `10m`). Serialising normalises each
//! value (a duration written `1000ms` is written back as `1s`), which keeps the digest canonical.

/// A public key as its PeerId string (hex accepted when reading).
pub(super) mod key {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::trust::PublicKey;

    pub fn serialize<S: Serializer>(key: &PublicKey, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(key)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Certificate chains, each as PEM text (leaf first).
pub(super) mod chains {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::trust::Chain;

    pub fn serialize<S: Serializer>(chains: &[Chain], serializer: S) -> Result<S::Ok, S::Error> {
        // Plain line ends, so YAML writes each chain as a readable block.
        serializer.collect_seq(chains.iter().map(|c| c.to_pem().replace("\r\n", "\n")))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Chain>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Chain::from_pem(text)
                    .map_err(|e| serde::de::Error::custom(format!("member {i}: {e}")))
            })
            .collect()
    }
}

/// A duration in humantime form.
pub(super) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
    }
}
