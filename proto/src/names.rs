//! The one spelling of each job kind, job state and run state: the store's columns, the JSON and CLI output and
//! the job counts of a run all use [`JobKind::as_str`], [`JobState::as_str`] and [`RunState::as_str`], and read
//! names back with `parse`. Which job states end a job is [`JobState::is_final`], here and nowhere else.

use std::fmt;
use std::str::FromStr;

use crate::v1::{JobKind, JobState, RunState};

/// A name that is not one of an enum's (see [`JobState::parse`] and its siblings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// The names there are, as `expected one of …` lists them.
    expected: &'static [&'static str],
    name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected one of {}, got '{}'",
            self.expected.join(", "),
            self.name.escape_debug()
        )
    }
}

impl std::error::Error for UnknownName {}

/// Names the values of a generated enum once: `ALL` (every value but `Unspecified`, in the order given),
/// `NAMES`, `as_str`, `parse`, `Display` and `FromStr`.
macro_rules! names {
    ($enum:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $enum {
            /// Every value but `Unspecified`, in the order the store's enum type lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The name of each of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name the store, the JSON and CLI output spell it as; `unspecified` for a value a message left
            /// unset.
            pub const fn as_str(self) -> &'static str {
                match self {
                    Self::Unspecified => "unspecified",
                    $(Self::$variant => $name,)+
                }
            }

            /// The value [`Self::as_str`] spells as `name`; `Unspecified` is never parsed.
            ///
            /// # Errors
            ///
            /// [`UnknownName`] listing the names there are.
            pub fn parse(name: &str) -> Result<Self, UnknownName> {
                Self::ALL.iter().copied().find(|value| value.as_str() == name).ok_or_else(|| UnknownName {
                    expected: Self::NAMES,
                    name: name.to_owned(),
                })
            }
        }

        /// The name, padded to a width when the format asks (`{:<10}` in a table).
        impl fmt::Display for $enum {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $enum {
            type Err = UnknownName;

            fn from_str(name: &str) -> Result<Self, UnknownName> {
                Self::parse(name)
            }
        }
    };
}

names!(JobKind {
    Baseline => "baseline",
    Cell => "cell",
    Probe => "probe",
    Export => "export",
    Recover => "recover",
});

names!(JobState {
    Queued => "queued",
    Leased => "leased",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
    Skipped => "skipped",
});

names!(RunState {
    Running => "running",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl JobState {
    /// Whether a job in this state has ended: done, failed (until its run is retried), cancelled or skipped. An
    /// unspecified state is not final: nothing says the job ended.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled | Self::Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_only_those() {
        for &kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Ok(kind));
        }
        for &state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        for &state in RunState::ALL {
            assert_eq!(RunState::parse(&state.to_string()), Ok(state));
        }
        assert_eq!(JobState::ALL.len(), 6);
        assert_eq!(
            RunState::parse("unspecified").unwrap_err().to_string(),
            "expected one of running, done, failed, cancelled, got 'unspecified'"
        );
        assert!(JobKind::parse("Cell").is_err());
        assert_eq!(format!("{:<10}|{}", RunState::Done, JobKind::Cell), "done      |cell");
    }

    #[test]
    fn final_job_states_are_the_four_that_end_a_job() {
        let finals: Vec<&str> = JobState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(finals, ["done", "failed", "cancelled", "skipped"]);
        assert!(!JobState::Unspecified.is_final());
    }
}
