//! The label transforms: what a label file's label field becomes for the metric.
//!
//! - `DetLabelEncode`: `json.loads(label)`, a list of `{"points": [[x, y], ...], "transcription": text}`.
//!   A box whose transcription is `###` or `*` is don't-care. Boxes with fewer points are padded to the
//!   most points by repeating their last point (`expand_points_num`), and the coordinates become float32
//!   (`np.array(boxes, dtype=np.float32)`). A label with no boxes makes PaddleOCR's transform return `None`:
//!   the dataset then evaluates another line in its place ([`crate::substitute`]); anything PaddleOCR would
//!   raise on is an error here.
//! - `CTCLabelEncode` / `MultiLabelEncode`: the text itself. Which texts PaddleOCR keeps depends on the
//!   character dictionary, so that part lives with the recognition code ([`crate::rec::encode`]).
//! - `ClsLabelEncode`: the label's first index in `label_list`. A label not in the list makes PaddleOCR
//!   skip the line; sensgrid refuses it, since it means the config and the data disagree.

use serde_json::Value;

use super::error::TransformError;

/// A sample's label as the metric needs it.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// The ground-truth boxes of a detection sample, all with the same number of points.
    Det {
        polygons: Vec<Vec<[f32; 2]>>,
        /// Per box: don't-care (`###` or `*`).
        ignore: Vec<bool>,
    },
    /// The transcription of a recognition sample, as the label file has it.
    Rec { text: String },
    /// The class index of a classification sample.
    Cls { label: usize },
}

impl Target {
    /// The det metric's ground truth (float32 coordinates widened exactly, as shapely receives them).
    pub fn gt_polygons(&self) -> Option<Vec<crate::det::GtPolygon>> {
        match self {
            Target::Det { polygons, ignore } => Some(
                polygons
                    .iter()
                    .zip(ignore)
                    .map(|(points, &ignore)| crate::det::GtPolygon {
                        points: points.iter().map(|&[x, y]| [f64::from(x), f64::from(y)]).collect(),
                        ignore,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// PaddleOCR's `DetLabelEncode`: the boxes of a det label, or `None` when it has none.
///
/// # Errors
/// [`TransformError::Label`] for what makes PaddleOCR's transform raise: invalid JSON, a box that is not
/// an object with `points` and `transcription`, a point that is not `[x, y]`, a box with no points.
pub fn det_label_encode(label: &str) -> Result<Option<Target>, TransformError> {
    const NAME: &str = "DetLabelEncode";
    let err = |message: String| TransformError::label(NAME, message);
    let value: Value = serde_json::from_str(label).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let boxes = match &value {
        Value::Array(boxes) => boxes,
        // `len()` of an empty object or string is 0 in Python too: no boxes.
        Value::Object(map) if map.is_empty() => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        other => return Err(err(format!("expected a JSON list of boxes, got {}", kind(other)))),
    };
    let mut polygons = Vec::with_capacity(boxes.len());
    let mut ignore = Vec::with_capacity(boxes.len());
    for (i, b) in boxes.iter().enumerate() {
        let Value::Object(map) = b else {
            return Err(err(format!("box {i}: expected an object, got {}", kind(b))));
        };
        let field = |key: &str| map.get(key).ok_or_else(|| err(format!("box {i}: no \"{key}\"")));
        let points = field("points")?;
        let transcription = field("transcription")?;
        let Value::Array(points) = points else {
            return Err(err(format!(
                "box {i}: \"points\": expected a list of [x, y], got {}",
                kind(points)
            )));
        };
        if points.is_empty() {
            return Err(err(format!("box {i}: \"points\" is empty")));
        }
        let points = points
            .iter()
            .enumerate()
            .map(|(j, p)| {
                point(p).ok_or_else(|| err(format!("box {i}: point {j}: expected [x, y] (two numbers), got {p}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        polygons.push(points);
        ignore.push(matches!(transcription, Value::String(t) if t == "###" || t == "*"));
    }
    if polygons.is_empty() {
        return Ok(None);
    }
    // expand_points_num: repeat each box's last point up to the largest point count.
    let most = polygons.iter().map(Vec::len).max().unwrap_or(0);
    for points in &mut polygons {
        let last = *points.last().expect("boxes have points");
        points.resize(most, last);
    }
    Ok(Some(Target::Det { polygons, ignore }))
}

/// `[x, y]` of two JSON numbers, as float32.
fn point(p: &Value) -> Option<[f32; 2]> {
    match p.as_array()?.as_slice() {
        [x, y] => Some([x.as_f64()? as f32, y.as_f64()? as f32]),
        _ => None,
    }
}

/// A JSON value's kind, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// PaddleOCR's `ClsLabelEncode`: the label's first index in `label_list`.
///
/// # Errors
/// [`TransformError::Label`] for a label not in the list (PaddleOCR would skip the line).
pub fn cls_label_encode(label: &str, label_list: &[String]) -> Result<Target, TransformError> {
    label_list
        .iter()
        .position(|l| l == label)
        .map(|label| Target::Cls { label })
        .ok_or_else(|| {
            TransformError::label(
                "ClsLabelEncode",
                format!("label {label:?} is not in label_list {label_list:?} (PaddleOCR would skip the line)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_labels_pad_points_and_mark_dont_care() {
        let label = r####"[{"transcription": "abc", "points": [[1, 2], [3.5, 4], [5, 6], [7, 8]]},
                           {"transcription": "###", "points": [[0, 0], [1, 0], [1, 1]]},
                           {"transcription": "*", "points": [[0.1, 0.2], [1e10, 3]]},
                           {"transcription": 7, "points": [[9, 9], [8, 8], [7, 7], [6, 6], [5, 5]]}]"####;
        let Some(Target::Det { polygons, ignore }) = det_label_encode(label).unwrap() else {
            panic!("expected boxes")
        };
        assert_eq!(ignore, vec![false, true, true, false]);
        assert!(polygons.iter().all(|p| p.len() == 5));
        assert_eq!(polygons[0][4], [7.0, 8.0]);
        assert_eq!(polygons[1][2..], [[1.0, 1.0]; 3]);
        assert_eq!(polygons[2][0], [0.1f64 as f32, 0.2f64 as f32]);
        assert_eq!(polygons[2][1][0], 1e10f64 as f32);
    }

    #[test]
    fn det_labels_without_boxes_give_none() {
        assert_eq!(det_label_encode("[]").unwrap(), None);
        assert_eq!(det_label_encode(" {} ").unwrap(), None);
    }

    #[test]
    fn det_labels_paddleocr_raises_on_are_errors() {
        let msg = |l: &str| det_label_encode(l).unwrap_err().to_string();
        assert!(msg("[{\"points\": [[1,2]]").starts_with("DetLabelEncode: not valid JSON: "));
        assert_eq!(msg("5"), "DetLabelEncode: expected a JSON list of boxes, got a number");
        assert_eq!(msg("[[1, 2]]"), "DetLabelEncode: box 0: expected an object, got a list");
        assert_eq!(
            msg(r#"[{"points": [[1, 2]]}]"#),
            "DetLabelEncode: box 0: no \"transcription\""
        );
        assert_eq!(
            msg(r#"[{"transcription": "a", "points": [[1, 2], [3]]}]"#),
            "DetLabelEncode: box 0: point 1: expected [x, y] (two numbers), got [3]"
        );
        assert_eq!(
            msg(r#"[{"transcription": "a", "points": []}]"#),
            "DetLabelEncode: box 0: \"points\" is empty"
        );
    }

    #[test]
    fn cls_labels_take_their_first_index() {
        let list = vec!["0".to_string(), "180".to_string(), "0".to_string()];
        assert_eq!(cls_label_encode("180", &list).unwrap(), Target::Cls { label: 1 });
        assert_eq!(cls_label_encode("0", &list).unwrap(), Target::Cls { label: 0 });
        assert_eq!(
            cls_label_encode("90\r", &list).unwrap_err().to_string(),
            r#"ClsLabelEncode: label "90\r" is not in label_list ["0", "180", "0"] (PaddleOCR would skip the line)"#
        );
    }
}
