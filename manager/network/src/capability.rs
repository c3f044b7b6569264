//! What a container asks of its network beyond ports and addresses, in the
//! shapes of the CNI conventions' runtime config: bandwidth limits (the
//! `bandwidth` capability, which Debian's `bandwidth` plugin serves with
//! tc) and DNS settings (`dns`, for plugins that configure name service;
//! the container's resolv.conf is written by the client either way).

use serde::{Deserialize, Serialize};

/// The largest rate hull passes on (its burst must stay under the
/// bandwidth plugin's 4 GB bucket).
const MAX_RATE: u64 = 100_000_000_000;
/// The smallest bucket: a 64 KiB segment (GSO) in bits. tbf drops any
/// packet larger than its bucket, so a smaller one would stall TCP.
const MIN_BURST_BITS: u64 = 64 * 1024 * 8;

/// Rates in bits per second, bursts in bits; zero means no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_burst: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_burst: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Bandwidth {
    /// Limits from rates as Kubernetes' bandwidth annotations write them
    /// (`10M`: bits per second), ingress being traffic to the container.
    /// Each gets a bucket of a tenth of a second of its rate, at least
    /// [`MIN_BURST_BITS`]. None if neither is given.
    pub fn from_rates(
        ingress: Option<&str>,
        egress: Option<&str>,
    ) -> Result<Option<Bandwidth>, String> {
        let limit = |flag: &str, text: Option<&str>| -> Result<(u64, u64), String> {
            let Some(text) = text else {
                return Ok((0, 0));
            };
            let rate = parse_rate(text).map_err(|why| format!("{flag} {text:?}: {why}"))?;
            Ok((rate, (rate / 10).max(MIN_BURST_BITS)))
        };
        let (ingress_rate, ingress_burst) = limit("--ingress-bandwidth", ingress)?;
        let (egress_rate, egress_burst) = limit("--egress-bandwidth", egress)?;
        let b = Bandwidth {
            ingress_rate,
            ingress_burst,
            egress_rate,
            egress_burst,
        };
        Ok((b != Bandwidth::default()).then_some(b))
    }
}

/// `1500`, `512k`, `10M`, `1G` (decimal, as Kubernetes' quantities) or
/// `8Mi` (binary): bits per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, suffix) = text.split_at(digits);
    let factor: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err("use bits per second with k, M, G, Ki, Mi or Gi, e.g. 10M".into()),
    };
    let rate = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or("use bits per second with k, M, G, Ki, Mi or Gi, e.g. 10M")?;
    match rate {
        0 => Err("a rate of 0 limits nothing: leave the flag out".into()),
        r if r > MAX_RATE => Err(format!("more than {MAX_RATE} bits per second")),
        r => Ok(r),
    }
}

/// Name service for the container, as the runtime config's `dns`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.searches.is_empty() && self.options.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_kubernetes_writes_them() {
        assert_eq!(parse_rate("1500"), Ok(1500));
        assert_eq!(parse_rate("512k"), Ok(512_000));
        assert_eq!(parse_rate("10M"), Ok(10_000_000));
        assert_eq!(parse_rate("8Mi"), Ok(8 << 20));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("10mbit").is_err());
        assert!(parse_rate("M").is_err());
        assert!(parse_rate("999G").is_err());
        assert!(parse_rate("99999999999999999999").is_err());
    }

    #[test]
    fn each_limit_gets_a_bucket_and_none_is_none() {
        assert_eq!(Bandwidth::from_rates(None, None), Ok(None));
        let b = Bandwidth::from_rates(Some("1M"), Some("100M"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (b.ingress_rate, b.ingress_burst),
            (1_000_000, MIN_BURST_BITS)
        );
        assert_eq!((b.egress_rate, b.egress_burst), (100_000_000, 10_000_000));
        let json = serde_json::to_value(Bandwidth::from_rates(None, Some("2M")).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"egressRate": 2_000_000, "egressBurst": MIN_BURST_BITS})
        );
        let err = Bandwidth::from_rates(Some("fast"), None).unwrap_err();
        assert!(err.starts_with("--ingress-bandwidth \"fast\""), "{err}");
    }
}
