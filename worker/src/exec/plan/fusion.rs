//! The fusion pass (issue 16): a Conv and the nodes that alone read its output, one after the other, become
//! one step. The patterns are the executor's, by op type; what they compute is `ops/fused.rs`.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use sensgrid_model::ir::Graph;
use tch::Tensor;

use super::{Source, Step};
use crate::exec::BuildCtx;
use crate::exec::ops::{self, fused};

/// A Conv with weights (and bias) from constants becomes one step together with the nodes that alone read
/// its output, one after the other: first a BatchNormalization with constant parameters, folded into the
/// convolution's weight and bias at each run; then any chain of activations (Relu, Sigmoid, HardSigmoid,
/// HardSwish, or Paddle's HardSwish as Add 3, Clip 0 6, Mul, Div 6) and Adds of another tensor or a constant
/// (Paddle's conv bias, a residual), each in place. `ops/fused.rs` says why that is exact enough. The fused
/// step takes the place of its last node, where all its inputs exist, and reads every constant its nodes
/// read, so `first_reader` still finds the first step a masked constant changes. Its `parts` keep the nodes'
/// own steps for tapped runs.
pub(super) fn fuse(
    graph: &Graph,
    by_name: &HashMap<String, Tensor>,
    steps: Vec<Step>,
    outputs: &[(String, Source)],
    constants: &[Tensor],
) -> Result<Vec<Step>> {
    let mut readers: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        for (k, input) in step.inputs.iter().enumerate() {
            if let Source::Slot(slot) = input {
                readers.entry(*slot).or_default().push((i, k));
            }
        }
    }
    for (_, output) in outputs {
        if let Source::Slot(slot) = output {
            readers.entry(*slot).or_default().push((usize::MAX, 0));
        }
    }
    // The steps that read step `i`'s one output (with the input index), graph outputs as `usize::MAX`.
    let readers_of = |i: usize| -> &[(usize, usize)] {
        match steps[i].outputs.split_first() {
            Some(((_, Some(slot)), rest)) if rest.iter().all(|(_, slot)| slot.is_none()) => {
                readers.get(slot).map_or(&[], Vec::as_slice)
            }
            _ => &[],
        }
    };
    let sole_reader = |i: usize, op_type: &str| -> Option<(usize, usize)> {
        match readers_of(i) {
            [(j, k)] if *j != usize::MAX && steps[*j].op_type == op_type => Some((*j, *k)),
            _ => None,
        }
    };
    let float_constant =
        |source: Option<&Source>| matches!(source, Some(Source::Constant(c)) if ops::is_float(constants[*c].kind()));
    // Whether `source` is a constant holding the one value `value`.
    let scalar = |source: Option<&Source>, value: f64| match source {
        Some(Source::Constant(c)) if ops::is_float(constants[*c].kind()) && constants[*c].numel() == 1 => {
            ops::floats(&constants[*c]).is_ok_and(|v| v == [value])
        }
        _ => false,
    };
    let ctx = |i: usize| BuildCtx {
        node: &graph.nodes[i],
        opset: graph.opset,
        constants: by_name,
    };
    // Paddle's HardSwish on step `i`'s output: its Add, Clip, Mul and Div steps, in order.
    let paddle_hardswish = |i: usize| -> Option<[usize; 4]> {
        let [(p, 0), (q, 0)] = *readers_of(i) else {
            return None;
        };
        if p == usize::MAX || q == usize::MAX {
            return None;
        }
        let (a, m) = if steps[p].op_type == "Add" { (p, q) } else { (q, p) };
        if steps[a].op_type != "Add" || steps[m].op_type != "Mul" {
            return None;
        }
        let (clip, 0) = sole_reader(a, "Clip")? else {
            return None;
        };
        let (mul, 1) = sole_reader(clip, "Mul")? else {
            return None;
        };
        let (div, 0) = sole_reader(mul, "Div")? else {
            return None;
        };
        let fits = mul == m
            && scalar(steps[a].inputs.get(1), 3.0)
            && steps[clip].inputs.len() == 3
            && scalar(steps[clip].inputs.get(1), 0.0)
            && scalar(steps[clip].inputs.get(2), 6.0)
            && scalar(steps[div].inputs.get(1), 6.0);
        fits.then_some([a, clip, mul, div])
    };

    struct Group {
        parts: Vec<usize>,
        bn: Option<usize>,
        tails: Vec<fused::Tail>,
        operands: Vec<Source>,
    }
    let copy = |source: Option<&Source>| match source {
        Some(Source::Slot(slot)) => Source::Slot(*slot),
        Some(Source::Constant(c)) => Source::Constant(*c),
        Some(Source::Absent) | None => Source::Absent,
    };
    let mut groups: Vec<Group> = Vec::new();
    // Steps already in a group: an Add that two convs alone feed joins the first conv's chain only.
    let mut taken: HashSet<usize> = HashSet::new();
    for (i, step) in steps.iter().enumerate() {
        let conv_fits = step.op_type == "Conv"
            && matches!(step.inputs.first(), Some(Source::Slot(_)))
            && float_constant(step.inputs.get(1))
            && (matches!(step.inputs.get(2), None | Some(Source::Absent)) || float_constant(step.inputs.get(2)));
        if !conv_fits {
            continue;
        }
        let mut group = Group {
            parts: vec![i],
            bn: None,
            tails: Vec::new(),
            operands: Vec::new(),
        };
        let mut last = i;
        if let Some((j, 0)) = sole_reader(last, "BatchNormalization")
            && steps[j].inputs.len() == 5
            && (1..5).all(|k| float_constant(steps[j].inputs.get(k)))
        {
            group.parts.push(j);
            group.bn = Some(j);
            last = j;
        }
        loop {
            if let Some(pattern) = paddle_hardswish(last).filter(|p| p.iter().all(|n| !taken.contains(n))) {
                group.parts.extend(pattern);
                group.tails.push(fused::Tail::Activation(fused::Activation::HardSwish));
                last = pattern[3];
            } else if let [(k, 0)] = *readers_of(last)
                && k != usize::MAX
                && !taken.contains(&k)
                && let Some(activation) = fused::Activation::read(&ctx(k))?
            {
                group.parts.push(k);
                group.tails.push(fused::Tail::Activation(activation));
                last = k;
            } else if let Some((k, input)) = sole_reader(last, "Add")
                && !taken.contains(&k)
                && steps[k].inputs.len() == 2
                && let other = &steps[k].inputs[1 - input]
                && match other {
                    Source::Slot(slot) => Some(*slot) != steps[last].outputs[0].1,
                    Source::Constant(_) => float_constant(Some(other)),
                    Source::Absent => false,
                }
            {
                group.parts.push(k);
                group
                    .tails
                    .push(fused::Tail::Add(fused::FIRST_OPERAND + group.operands.len()));
                group.operands.push(copy(Some(other)));
                last = k;
            } else {
                break;
            }
        }
        if group.parts.len() > 1 {
            taken.extend(group.parts.iter().copied());
            groups.push(group);
        }
    }

    let mut steps: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    let mut fused_at: HashMap<usize, Step> = HashMap::new();
    for group in groups {
        let conv = &graph.nodes[group.parts[0]];
        let last = *group.parts.last().expect("two parts or more");
        let bn_epsilon = group.bn.map(|bn| ops::norm::epsilon(&ctx(bn))).transpose()?;
        let parts: Vec<Step> = group
            .parts
            .iter()
            .map(|&g| steps[g].take().expect("in one group"))
            .collect();
        let mut inputs: Vec<Source> = (0..3).map(|k| copy(parts[0].inputs.get(k))).collect();
        for k in 1..5 {
            inputs.push(match bn_epsilon {
                Some(_) => copy(parts[1].inputs.get(k)),
                None => Source::Absent,
            });
        }
        debug_assert_eq!(inputs.len(), fused::FIRST_OPERAND);
        inputs.extend(group.operands);
        let kernel = fused::ConvBnAct {
            conv: ops::conv::ConvSpec::read(&ctx(group.parts[0]))?,
            bn_epsilon,
            tails: group.tails,
        };
        let op_type = parts.iter().map(|p| p.op_type.as_str()).collect::<Vec<_>>().join("+");
        fused_at.insert(
            last,
            Step {
                name: conv.name.clone(),
                op_type,
                kernel: Box::new(kernel),
                inputs,
                outputs: parts.last().expect("two parts or more").outputs.clone(),
                free_after: Vec::new(),
                parts,
            },
        );
    }
    Ok(steps
        .into_iter()
        .enumerate()
        .filter_map(|(i, step)| fused_at.remove(&i).or(step))
        .collect())
}
