//! Assembly: the slots the channel rules coupled become groups, each checked (blocked channels, coupled
//! sets of other sizes, a single channel, a channel held twice) and listed with its members, parameters and
//! FLOPs.

use std::collections::{BTreeMap, HashMap};

use super::rules::Walk;
use super::{Analysis, ChannelMap, Excluded, Group, Member};
use crate::analysis::count;
use crate::error::Result;
use crate::ir::{Graph, Node};
use crate::ops::{self, Weights};

/// Groups channels by source, checks each group, and lists its members.
pub(super) fn assemble(
    graph: &Graph,
    mut walk: Walk,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Result<Analysis> {
    // Sources that share a channel belong to one group.
    let mut parent: Vec<usize> = (0..walk.sources.len()).collect();
    fn find(parent: &mut [usize], mut s: usize) -> usize {
        while parent[s] != s {
            parent[s] = parent[parent[s]];
            s = parent[s];
        }
        s
    }
    let mut owner: HashMap<usize, usize> = HashMap::new();
    for (s, source) in walk.sources.iter().enumerate() {
        for &slot in &source.slots {
            let root = walk.slots.root(slot);
            match owner.get(&root) {
                Some(&o) => {
                    let (a, b) = (find(&mut parent, o), find(&mut parent, s));
                    parent[b.max(a)] = a.min(b);
                }
                None => {
                    owner.insert(root, s);
                }
            }
        }
    }
    // Sources are in node order, so each set's first member is its key conv.
    let mut source_sets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for s in 0..walk.sources.len() {
        let root = find(&mut parent, s);
        source_sets.entry(root).or_default().push(s);
    }

    let params = count::param_tensors(graph)?;
    let mut groups = Vec::new();
    let mut excluded = Vec::new();
    // For each candidate set: its index in `groups`, and the group channel of each of its channels.
    let mut channel_index: HashMap<usize, (usize, usize)> = HashMap::new();
    for set in source_sets.values() {
        let key = &walk.sources[set[0]];
        let key_channels: Vec<usize> = key.slots.clone().into_iter().map(|s| walk.slots.root(s)).collect();
        let mut all: Vec<usize> = set
            .iter()
            .flat_map(|&s| walk.sources[s].slots.clone())
            .map(|s| walk.slots.root(s))
            .collect();
        all.sort_unstable();
        all.dedup();
        let mut distinct = key_channels.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let reason = if let Some(why) = all.iter().find_map(|&c| walk.slots.blocked[c].clone()) {
            Some(why)
        } else if distinct.len() != key_channels.len() || all.len() != key_channels.len() {
            Some("its channels are coupled, through Concat, Split or Slice, to sets of other sizes".to_owned())
        } else if key_channels.len() < 2 {
            Some("it has a single channel".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            for &s in set.iter() {
                let source = &walk.sources[s];
                excluded.push(Excluded {
                    conv: source.weight.clone(),
                    node: source.node.clone(),
                    reason: reason.clone(),
                });
            }
            continue;
        }
        let index = groups.len();
        for (g, &c) in key_channels.iter().enumerate() {
            channel_index.insert(c, (index, g));
        }
        groups.push(Group {
            key: key.weight.clone(),
            key_node: key.node.clone(),
            key_axis: key.axis,
            channels: key_channels.len(),
            members: Vec::new(),
            params: 0,
            flops: 0,
        });
    }

    // Members: every constant axis holding channels of a group.
    let mut duplicated = vec![false; groups.len()];
    for ((tensor, axis), constant) in &walk.constants {
        let mut by_group: BTreeMap<usize, Vec<Option<usize>>> = BTreeMap::new();
        for (k, &slot) in constant.slots.iter().enumerate() {
            let root = walk.slots.root(slot);
            if let Some(&(group, g)) = channel_index.get(&root) {
                let map = by_group
                    .entry(group)
                    .or_insert_with(|| vec![None; groups[group].channels]);
                if map[g].replace(k).is_some() {
                    duplicated[group] = true;
                }
            }
        }
        for (group, index_map) in by_group {
            groups[group].members.push(Member {
                tensor: tensor.clone(),
                node: constant.node.clone(),
                input: constant.input,
                axis: *axis,
                index_map,
            });
        }
    }
    let by_name: HashMap<&str, &Node> = graph.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    for group in &mut groups {
        group
            .members
            .sort_by_key(|m| (graph.nodes.iter().position(|n| n.name == m.node), m.input, m.axis));
        for member in &group.members {
            let data = &graph.constants[&member.tensor];
            let covered = member.index_map.iter().flatten().count() as u64;
            let len = data.dims()[member.axis] as u64;
            if params.contains(member.tensor.as_str()) {
                group.params += data.len() as u64 / len * covered;
            }
            let node = by_name[member.node.as_str()];
            let is_weight = matches!(
                ops::op_of(node)?.weights,
                Weights::Filters { filters, .. } if filters == member.input
            );
            if is_weight {
                group.flops += count::node_flops(graph, node, shape_of)? / len * covered;
            }
        }
    }
    // A channel read twice by one member (Concat of a tensor with itself) cannot be cut consistently.
    let mut kept_groups = Vec::new();
    let mut renumber = vec![None; groups.len()];
    for (i, group) in groups.into_iter().enumerate() {
        if duplicated[i] {
            excluded.push(Excluded {
                conv: group.key.clone(),
                node: group.key_node.clone(),
                reason: "a member holds one of its channels twice".to_owned(),
            });
        } else {
            renumber[i] = Some(kept_groups.len());
            kept_groups.push(group);
        }
    }

    let mut tensors = BTreeMap::new();
    for (name, carried) in &walk.carried {
        let channels: Vec<Option<(usize, usize)>> = carried
            .slots
            .iter()
            .map(|&s| {
                let root = walk.slots.root(s);
                channel_index
                    .get(&root)
                    .and_then(|&(group, g)| renumber[group].map(|group| (group, g)))
            })
            .collect();
        if channels.iter().any(Option::is_some) {
            tensors.insert(
                name.clone(),
                ChannelMap {
                    axis: carried.axis,
                    channels,
                },
            );
        }
    }
    excluded.sort_by_key(|e| graph.nodes.iter().position(|n| n.name == e.node));
    Ok(Analysis {
        groups: kept_groups,
        excluded,
        tensors,
        rewrites: walk.rewrites,
    })
}
