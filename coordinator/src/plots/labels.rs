//! Numbers and group keys as the plots label them, and the width of the group-key column they share.

/// `ratio` as a short label: 0.1, 0.25.
pub(super) fn ratio_label(ratio: f64) -> String {
    format!("{}", (ratio * 1000.0).round() / 1000.0)
}

/// A loss as a short label: 0.052, -0.004.
pub(super) fn loss_label(loss: f64) -> String {
    if loss.abs() >= 10.0 {
        format!("{loss:.1}")
    } else {
        format!("{loss:.3}")
    }
}

/// A group key cut to `max` characters, keeping both ends.
pub(super) fn short_key(key: &str, max: usize) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= max {
        return key.to_owned();
    }
    let tail = max / 2;
    let head = max - tail - 1;
    let mut short: String = chars[..head].iter().collect();
    short.push('…');
    short.extend(&chars[chars.len() - tail..]);
    short
}

/// The longest key drawn in full on the heatmap and the plan plot.
pub(super) const KEY_CHARS: usize = 48;

/// The width of the group-key column, from the longest key (12 px DejaVu Sans: about 7 px a character).
pub(super) fn key_column_width<'a>(keys: impl Iterator<Item = &'a str>) -> u32 {
    let chars = keys.map(|k| k.chars().count().min(KEY_CHARS)).max().unwrap_or(0);
    (chars as u32 * 7 + 24).clamp(90, 420)
}

/// A threshold as given (0.05, not 0.050).
pub(super) fn loss_label_exact(loss: f64) -> String {
    format!("{loss}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_keep_both_ends() {
        assert_eq!(short_key("conv2d_1.w_0", 48), "conv2d_1.w_0");
        let short = short_key("backbone.stages.3.blocks.11.mixer.qkv.weight_long_name", 20);
        assert_eq!(short.chars().count(), 20);
        assert!(
            short.starts_with("backbone") && short.ends_with("_long_name"),
            "{short}"
        );
    }
}
