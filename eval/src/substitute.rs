//! What PaddleOCR's `SimpleDataSet` evaluates in place of a sample whose transforms fail.
//!
//! When a line's transforms return `None` (a rec label that is empty, too long or has no character in the
//! dictionary; a cls label not in `label_list`) or raise (an image that is missing or does not decode),
//! `__getitem__(idx)` returns `__getitem__((idx + 1) % len)` in eval mode: the set keeps its length and
//! the next good line is evaluated (and counted) once more. Nothing is dropped, so a metric over only the
//! good lines would differ from PaddleOCR's. This holds for det, rec and cls sets alike.
//!
//! Not reproduced: a run of about a thousand failing lines exceeds Python's recursion limit and stops
//! PaddleOCR's evaluation with `RecursionError`; here the run is simply skipped.

/// For each line of an eval set, the line PaddleOCR evaluates in its place: itself when `usable[i]`, else
/// the first usable line after it, wrapping around. `None` when no line is usable (PaddleOCR never
/// returns then).
pub fn substitute_failed(usable: &[bool]) -> Option<Vec<usize>> {
    let n = usable.len();
    let first = usable.iter().position(|&u| u)?;
    let mut out = vec![0; n];
    // Walk backwards from the first usable line, wrapping once: each line takes the nearest usable one
    // at or after it.
    let mut next = first;
    for k in 0..n {
        let i = (first + n - k) % n;
        if usable[i] {
            next = i;
        }
        out[i] = next;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_lines_take_the_next_usable_one_wrapping_around() {
        assert_eq!(
            substitute_failed(&[true, false, false, true, false]),
            Some(vec![0, 3, 3, 3, 0])
        );
        assert_eq!(substitute_failed(&[false, true]), Some(vec![1, 1]));
        assert_eq!(substitute_failed(&[true]), Some(vec![0]));
        assert_eq!(substitute_failed(&[false, false]), None);
        assert_eq!(substitute_failed(&[]), None);
    }
}
