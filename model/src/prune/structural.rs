//! Structural pruning: a smaller graph with the cut channels removed from every member, and every channel
//! count written into the graph (depthwise group counts, Reshape targets, Split sizes, Slice bounds) updated.

use std::collections::BTreeMap;

use super::Cut;
use crate::analysis::groups::{Analysis, ShapeRewrite};
use crate::error::Result;
use crate::ir::{Attr, Graph, Node, TensorData};
use crate::ops::{self, Channels};

/// A pruned graph, and what it kept.
pub struct Pruned {
    pub graph: Graph,
    /// For every pruned constant: each pruned axis and the original indices kept along it, so a training
    /// checkpoint can be cut the same way.
    pub kept: BTreeMap<String, Vec<(usize, Vec<usize>)>>,
}

/// Removes the channels of `cut` from `graph`.
///
/// # Errors
/// A node to rewrite whose channel count is not where the analysis found it (the graph is not the one
/// analysed).
pub fn prune(graph: &Graph, analysis: &Analysis, cut: &Cut) -> Result<Pruned> {
    let mut out = graph.clone();
    let mut kept: BTreeMap<String, Vec<(usize, Vec<usize>)>> = BTreeMap::new();
    for ((tensor, axis), indices) in cut.removed(analysis) {
        let data = out
            .constants
            .get_mut(&tensor)
            .expect("members are constants of the graph");
        let keep: Vec<usize> = (0..data.dims()[axis]).filter(|k| !indices.contains(k)).collect();
        *data = data.select_along(axis, &keep);
        kept.entry(tensor).or_default().push((axis, keep));
    }

    // Whether each channel of a tensor survives the cut.
    let survives = |tensor: &str| -> Option<Vec<bool>> {
        analysis.tensors.get(tensor).map(|map| {
            map.channels
                .iter()
                .map(|c| c.is_none_or(|(group, g)| cut.channels.get(&group).is_none_or(|cut| !cut.contains(&g))))
                .collect()
        })
    };
    let count = |flags: &[bool]| flags.iter().filter(|&&k| k).count();

    let mut new_constants: Vec<(String, TensorData)> = Vec::new();
    for rewrite in &analysis.rewrites {
        // The node, the input that holds the counts, and (entry, new value) pairs.
        let (name, input, values): (&str, usize, Vec<(usize, i64)>) = match rewrite {
            ShapeRewrite::CountEntry {
                node,
                input,
                position,
                tensor,
            } => {
                let Some(flags) = survives(tensor) else { continue };
                (node, *input, vec![(*position, count(&flags) as i64)])
            }
            ShapeRewrite::SplitSizes { node, sizes } => {
                let n = find(&out, node);
                let Some(flags) = survives(&n.inputs[0]) else { continue };
                let mut start = 0;
                let mut values = Vec::new();
                for (i, size) in sizes.iter().enumerate() {
                    values.push((i, count(&flags[start..start + size]) as i64));
                    start += size;
                }
                (node, 1, values)
            }
            ShapeRewrite::SliceBounds {
                node,
                position,
                start,
                len,
            } => {
                let n = find(&out, node);
                let Some(flags) = survives(&n.inputs[0]) else { continue };
                let new_start = count(&flags[..*start]) as i64;
                let new_end = new_start + count(&flags[*start..start + len]) as i64;
                // Starts (input 1) and ends (input 2) are rewritten together below.
                set_ints(&mut out, &mut new_constants, node, 1, &[(*position, new_start)])?;
                (node, 2, vec![(*position, new_end)])
            }
        };
        let node = find(&out, name);
        let split_by_attr = matches!(rewrite, ShapeRewrite::SplitSizes { .. }) && node.input(1).is_none();
        if split_by_attr {
            let sizes: Vec<i64> = values.iter().map(|(_, v)| *v).collect();
            let node = out.nodes.iter_mut().find(|n| n.name == name).expect("found above");
            if graph.opset < 13 {
                set_attr(node, "split", Attr::Ints(sizes));
            } else {
                let constant = format!("{name}.pruned_split");
                node.attributes.retain(|(n, _)| n != "num_outputs");
                node.inputs.resize(2, String::new());
                node.inputs[1] = constant.clone();
                new_constants.push((
                    constant,
                    TensorData::from_values(vec![sizes.len()], &sizes).expect("sized"),
                ));
            }
        } else {
            set_ints(&mut out, &mut new_constants, name, input, &values)?;
        }
    }
    out.constants.extend(new_constants);

    // Depthwise convs have one group per channel: their group count follows the channel count.
    for node in &mut out.nodes {
        if !ops::describe(node).is_some_and(|op| matches!(op.channels, Channels::Conv { .. })) {
            continue;
        }
        let Some(weight) = node.input(1) else { continue };
        let (Some(old), Some(new)) = (graph.constants.get(weight), out.constants.get(weight)) else {
            continue;
        };
        let group = node.attr_int("group")?.unwrap_or(1);
        if group > 1 && group as usize == old.dims()[0] && old.dims()[0] != new.dims()[0] {
            let channels = new.dims()[0] as i64;
            set_attr(node, "group", Attr::Int(channels));
        }
    }

    // Declared shapes of tensors that lost channels are stale.
    out.value_info
        .retain(|name, _| survives(name).is_none_or(|flags| flags.iter().all(|&k| k)));
    Ok(Pruned { graph: out, kept })
}

fn find<'a>(graph: &'a Graph, name: &str) -> &'a Node {
    graph
        .nodes
        .iter()
        .find(|n| n.name == name)
        .expect("rewrites name nodes of the analysed graph")
}

fn set_attr(node: &mut Node, name: &str, value: Attr) {
    match node.attributes.iter_mut().find(|(n, _)| n == name) {
        Some((_, attr)) => *attr = value,
        None => node.attributes.push((name.to_owned(), value)),
    }
}

/// Writes `values` (position, value) into a copy of the integer constant on input `input` of node `name`,
/// under a name of its own, so other readers of the original keep it.
fn set_ints(
    graph: &mut Graph,
    new_constants: &mut Vec<(String, TensorData)>,
    name: &str,
    input: usize,
    values: &[(usize, i64)],
) -> Result<()> {
    let node = graph
        .nodes
        .iter_mut()
        .find(|n| n.name == name)
        .expect("a node of the graph");
    let source = node.inputs[input].clone();
    let data = new_constants
        .iter()
        .find(|(n, _)| *n == source)
        .map(|(_, d)| d)
        .or_else(|| graph.constants.get(&source))
        .ok_or_else(|| node.error(format!("input {input} is not a constant")))?;
    let mut ints = data
        .to_i64s()
        .ok_or_else(|| node.error(format!("input {input} does not hold integers")))?;
    for &(position, value) in values {
        *ints
            .get_mut(position)
            .ok_or_else(|| node.error(format!("input {input} has no entry {position}")))? = value;
    }
    let dims = data.dims().to_vec();
    let rewritten = match data.dtype() {
        crate::ir::DataType::Int32 => {
            let narrow: Vec<i32> = ints.iter().map(|&v| v as i32).collect();
            TensorData::from_values(dims, &narrow)
        }
        _ => TensorData::from_values(dims, &ints),
    }
    .expect("same element count");
    let renamed = format!("{name}.pruned_input{input}");
    node.inputs[input] = renamed.clone();
    new_constants.retain(|(n, _)| *n != renamed);
    new_constants.push((renamed, rewritten));
    Ok(())
}
