//! The services' settings ([`ServiceConfig`]), checked before anything starts, and the duration syntax of the
//! command line ([`parse_duration`]). Reading files and flags is the binary's job, not this module's.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::Backoff;

/// How the services behave; every field is a command-line flag of `coordinator serve`.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// How often workers are told to heartbeat (`RegisterResponse.heartbeat_interval_ms`).
    pub heartbeat: Duration,
    /// How long a claim or heartbeat keeps a job leased: a worker that stops heartbeating loses its job after
    /// at most this plus `sweep` (after the coordinator started, when that is later: see `sweeper`).
    pub lease: Duration,
    /// How often the sweeper takes back expired leases; also how often the dispatcher looks at the queue when
    /// it believes it empty, which catches jobs that became claimable without a wake-up (another process,
    /// backoffs from before a restart).
    pub sweep: Duration,
    /// Attempts each job of a new run gets.
    pub max_attempts: u32,
    /// The wait before a failed or expired attempt's job is claimable again.
    pub backoff: Backoff,
    /// Where artifact files live, named by their digest.
    pub artifact_dir: PathBuf,
    /// The bearer token of `WorkerService` calls.
    pub worker_token: String,
    /// The bearer token of `AdminService` calls.
    pub admin_token: String,
    /// Serves TLS when set.
    pub tls: Option<TlsIdentity>,
}

/// The coordinator's certificate chain and private key, PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    /// Leaves the key out, so a printed config never shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .finish_non_exhaustive()
    }
}

/// A setting that cannot work; names the command-line flag.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {reason}")]
pub struct ConfigError {
    /// The flag, e.g. `--lease`.
    pub flag: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl ServiceConfig {
    /// Checks the settings against each other.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a zero duration, a heartbeat not shorter than the lease (the lease would lapse
    /// between heartbeats), zero attempts, a backoff cap below its base, a token that cannot travel as
    /// metadata (see [`sensgrid_client::Bearer`]), or one token for both services.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |flag, reason: String| Err(ConfigError { flag, reason });
        for (flag, value) in [
            ("--heartbeat", self.heartbeat),
            ("--lease", self.lease),
            ("--sweep", self.sweep),
        ] {
            if value.is_zero() {
                return fail(flag, "expected a duration above 0".into());
            }
        }
        if self.heartbeat >= self.lease {
            return fail(
                "--heartbeat",
                format!(
                    "expected less than --lease ({:?}), got {:?}: the lease would lapse between heartbeats",
                    self.lease, self.heartbeat
                ),
            );
        }
        if u32::try_from(self.lease.as_millis()).is_err() || u32::try_from(self.heartbeat.as_millis()).is_err() {
            return fail("--lease", "expected at most 49 days".into());
        }
        if self.max_attempts == 0 || i32::try_from(self.max_attempts).is_err() {
            return fail(
                "--max-attempts",
                format!("expected 1 to {}, got {}", i32::MAX, self.max_attempts),
            );
        }
        if self.backoff.cap < self.backoff.base {
            return fail(
                "--backoff-cap",
                format!(
                    "expected at least --backoff-base ({:?}), got {:?}",
                    self.backoff.base, self.backoff.cap
                ),
            );
        }
        for (flag, token) in [
            ("--worker-token", &self.worker_token),
            ("--admin-token", &self.admin_token),
        ] {
            if sensgrid_client::Bearer::new(token).is_err() {
                return fail(flag, "expected visible ASCII characters without spaces".into());
            }
        }
        if self.worker_token == self.admin_token {
            return fail(
                "--admin-token",
                "expected a token other than --worker-token: with the same token every worker could create, \
                 plan and cancel runs"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Parses a duration written as a whole number and a unit: `250ms`, `5s`, `2m`, `1h`.
///
/// # Errors
///
/// A message naming the text and what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || format!("expected a whole number and a unit (ms, s, m, h), e.g. 5s or 250ms, got '{text}'");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(expected)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| expected())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(expected()),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServiceConfig {
        ServiceConfig {
            heartbeat: Duration::from_secs(5),
            lease: Duration::from_secs(20),
            sweep: Duration::from_secs(2),
            max_attempts: 3,
            backoff: Backoff::default(),
            artifact_dir: PathBuf::from("artifacts"),
            worker_token: "w".into(),
            admin_token: "a".into(),
            tls: None,
        }
    }

    #[test]
    fn parse_duration_reads_each_unit_and_names_bad_text() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "5", "s", "5 s", "1.5s", "-1s", "5d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("got '{bad}'")), "{bad}: {err}");
        }
    }

    #[test]
    fn validate_names_the_flag() {
        assert!(config().validate().is_ok());
        let message = |change: fn(&mut ServiceConfig)| {
            let mut c = config();
            change(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            message(|c| c.heartbeat = Duration::from_secs(20)),
            "--heartbeat: expected less than --lease (20s), got 20s: the lease would lapse between heartbeats"
        );
        assert_eq!(
            message(|c| c.sweep = Duration::ZERO),
            "--sweep: expected a duration above 0"
        );
        assert_eq!(
            message(|c| c.max_attempts = 0),
            "--max-attempts: expected 1 to 2147483647, got 0"
        );
        assert_eq!(
            message(|c| c.admin_token = "a b".into()),
            "--admin-token: expected visible ASCII characters without spaces"
        );
        assert_eq!(
            message(|c| c.admin_token = c.worker_token.clone()),
            "--admin-token: expected a token other than --worker-token: with the same token every worker could \
             create, plan and cancel runs"
        );
    }
}
