//! Named queries in `.sql` files, the format both stores keep their SQL in: a file's header comment, then one
//! query per `-- name: <name>` line, running to the next such line. Each store embeds its files at compile time
//! and looks queries up by name; the checks its tests make are here too, so both stores are held to them.

use std::collections::HashMap;

#[cfg(test)]
use super::{JobKind, JobState, RunState};

/// A store's query files (`(file name, text)`), parsed once.
pub(crate) struct QueryFiles {
    /// Where the files live, for messages (`store/queries`).
    dir: &'static str,
    queries: HashMap<&'static str, &'static str>,
}

impl QueryFiles {
    /// Parses `files`.
    ///
    /// # Panics
    ///
    /// A query named twice: a programming error, caught by the first test that touches the store.
    pub(crate) fn new(dir: &'static str, files: &'static [(&'static str, &'static str)]) -> Self {
        let mut queries = HashMap::new();
        for &(file, text) in files {
            for (name, sql) in parse(text) {
                assert!(
                    queries.insert(name, sql).is_none(),
                    "{dir}/{file}: query '{name}' is named twice"
                );
            }
        }
        Self { dir, queries }
    }

    /// The named query; every name a store uses is checked by its tests ([`QueryFiles::check_used`]).
    pub(crate) fn sql(&self, name: &str) -> &'static str {
        self.queries
            .get(name)
            .unwrap_or_else(|| panic!("no query named '{name}' in {}/*.sql", self.dir))
    }

    /// Checks that the files name exactly the queries in `used`, each a whole statement.
    #[cfg(test)]
    pub(crate) fn check_used(&self, used: &[&str]) {
        let mut used = used.to_vec();
        used.sort_unstable();
        used.dedup();
        let mut named: Vec<&str> = self.queries.keys().copied().collect();
        named.sort_unstable();
        assert_eq!(named, used, "{}: the queries named and the queries used", self.dir);
        for name in used {
            let sql = self.sql(name);
            assert!(!sql.is_empty() && !sql.ends_with(';'), "{name}: {sql}");
            assert!(!sql.contains("-- name:"), "{name} runs into the next query");
        }
    }

    /// Checks that no query's code (comments aside) reads the database's clock: the store binds the caller's
    /// `now`, so tests can move time.
    #[cfg(test)]
    pub(crate) fn check_no_clock(&self, clocks: &[&str]) {
        for (name, sql) in &self.queries {
            let lower = sql.to_lowercase();
            for clock in clocks {
                let in_code = lower
                    .lines()
                    .any(|line| line.split("--").next().unwrap_or("").contains(clock));
                assert!(
                    !in_code,
                    "{}: query '{name}' reads the database clock ({clock}): bind the caller's `now`",
                    self.dir
                );
            }
        }
    }

    /// Checks the names the queries' code compares a state or kind column with (`state = 'leased'`,
    /// `kind <> 'export'`) against the enums', and each list of states (`state IN ('queued', 'leased')`): a
    /// list of job states is the unfinished ones (those [`JobState::is_final`] says are not final), or one of
    /// the other lists above; so a state added to the enum or renamed there fails here until the SQL follows.
    #[cfg(test)]
    pub(crate) fn check_state_names(&self) {
        let unfinished: Vec<JobState> = JobState::ALL.iter().copied().filter(|s| !s.is_final()).collect();
        for (name, sql) in &self.queries {
            let code: Vec<&str> = sql.lines().map(|line| line.split("--").next().unwrap_or("")).collect();
            let code = code.join("\n");
            for (at, _) in code.match_indices("IN ('") {
                let list = &code[at + "IN (".len()..];
                let list = &list[..list.find(')').unwrap_or(list.len())];
                let labels: Vec<&str> = list.split(',').map(|label| label.trim().trim_matches('\'')).collect();
                let jobs: Option<Vec<JobState>> = labels.iter().map(|l| JobState::parse(l).ok()).collect();
                let runs: Option<Vec<RunState>> = labels.iter().map(|l| RunState::parse(l).ok()).collect();
                let known = jobs.is_some_and(|jobs| jobs == unfinished || jobs == EXPORT_WAITS_FOR)
                    || runs.is_some_and(|runs| runs == REOPENABLE_RUN || runs == RECOVERABLE_RUN);
                assert!(
                    known,
                    "{}: query '{name}' lists ({list}), neither the unfinished job states ({}) nor a list named in \
                     query_files.rs",
                    self.dir,
                    unfinished.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            for column in ["state", "kind"] {
                for compare in [" = '", " <> '"] {
                    let pattern = format!("{column}{compare}");
                    for (at, _) in code.match_indices(&pattern) {
                        let label = &code[at + pattern.len()..];
                        let label = &label[..label.find('\'').unwrap_or(label.len())];
                        let known = match column {
                            "state" => JobState::parse(label).is_ok() || RunState::parse(label).is_ok(),
                            _ => JobKind::parse(label).is_ok(),
                        };
                        assert!(
                            known,
                            "{}: query '{name}' compares {column} with '{label}', no such name",
                            self.dir
                        );
                    }
                }
            }
        }
    }
}

/// The lists of states the queries spell out besides the unfinished job states (`state IN ('queued', 'leased')`,
/// which [`QueryFiles::check_state_names`] derives from [`JobState::is_final`]): the states a run's other jobs
/// must be in before its export is claimed (ended, and not failed or cancelled).
#[cfg(test)]
const EXPORT_WAITS_FOR: [JobState; 2] = [JobState::Done, JobState::Skipped];

/// The run states in which a run can still be planned, replanned or retried.
#[cfg(test)]
const REOPENABLE_RUN: [RunState; 2] = [RunState::Running, RunState::Done];

/// The run states a recovery reopens a run from (once its export is done): every ended one.
#[cfg(test)]
const RECOVERABLE_RUN: [RunState; 3] = [RunState::Done, RunState::Failed, RunState::Cancelled];

/// Splits a query file into `(name, sql)` pairs at each `-- name: <name>` line; the SQL runs to the next such
/// line, without its trailing `;` and blank lines. Text before the first name line is the file's comment.
fn parse(text: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut queries = Vec::new();
    let Some(start) = text.find("-- name: ") else {
        return queries;
    };
    let mut rest = &text[start..];
    while let Some(line_end) = rest.find('\n') {
        let name = rest["-- name: ".len()..line_end].trim();
        let body = &rest[line_end + 1..];
        let end = body.find("\n-- name: ").map_or(body.len(), |i| i + 1);
        let sql = body[..end].trim().trim_end_matches(';').trim_end();
        queries.push((name, sql));
        rest = &body[end..];
    }
    queries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_files_split_at_name_lines() {
        let parsed = parse("-- header\n\n-- name: a\n-- about a\nSELECT 1;\n\n-- name: b\nSELECT\n  2;\n");
        assert_eq!(parsed, [("a", "-- about a\nSELECT 1"), ("b", "SELECT\n  2")]);
    }
}
