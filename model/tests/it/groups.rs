//! Groups, criteria, masking and structural pruning on a small graph built here, where every expected
//! value can be worked out by hand.

use std::collections::{BTreeMap, HashMap};

use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::ir::{Attr, Graph, Node, TensorData, ValueInfo};
use sensgrid_model::prune::{self, Criterion, Cut, Plan, structural};

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attributes: Vec<(&str, Attr)>) -> Node {
    Node {
        name: name.to_owned(),
        op_type: op.to_owned(),
        domain: String::new(),
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        outputs: outputs.iter().map(|s| (*s).to_owned()).collect(),
        attributes: attributes.into_iter().map(|(n, a)| (n.to_owned(), a)).collect(),
    }
}

fn weights(dims: &[usize], f: impl Fn(usize) -> f32) -> TensorData {
    let n: usize = dims.iter().product();
    TensorData::from_values(dims.to_vec(), &(0..n).map(f).collect::<Vec<f32>>()).unwrap()
}

/// x[1,3,8,8] -> conv_a (4 filters) -> relu -> depthwise conv_d -> add(bias [1,4,1,1]) -> concat with
/// conv_c (2 filters) -> conv_b (5 filters) -> graph output.
///
/// conv_a's filter k has every weight equal to `a_scale[k]`, so its L1 ranking is known.
fn small_graph(a_scale: [f32; 4]) -> (Graph, HashMap<String, Vec<usize>>) {
    let mut constants = BTreeMap::new();
    constants.insert("a.w".into(), weights(&[4, 3, 1, 1], |i| a_scale[i / 3]));
    constants.insert("a.b".into(), weights(&[4], |i| i as f32 * 0.1));
    constants.insert("d.w".into(), weights(&[4, 1, 3, 3], |i| 0.05 * (i % 7) as f32 - 0.1));
    constants.insert("bias".into(), weights(&[1, 4, 1, 1], |i| 0.2 - i as f32 * 0.05));
    constants.insert("c.w".into(), weights(&[2, 3, 1, 1], |i| 0.3 - i as f32 * 0.1));
    constants.insert(
        "b.w".into(),
        weights(&[5, 6, 1, 1], |i| ((i * 37) % 11) as f32 * 0.1 - 0.5),
    );
    let graph = Graph {
        name: "small".into(),
        ir_version: 8,
        opset: 13,
        other_opsets: Vec::new(),
        producer_name: String::new(),
        producer_version: String::new(),
        metadata: Vec::new(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            fact: None,
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            fact: None,
        }],
        constants,
        nodes: vec![
            node("Conv", "conv_a", &["x", "a.w", "a.b"], &["a"], vec![]),
            node("Relu", "relu", &["a"], &["r"], vec![]),
            node(
                "Conv",
                "conv_d",
                &["r", "d.w"],
                &["d"],
                vec![("group", Attr::Int(4)), ("pads", Attr::Ints(vec![1, 1, 1, 1]))],
            ),
            node("Add", "add", &["d", "bias"], &["s"], vec![]),
            node("Conv", "conv_c", &["x", "c.w"], &["c"], vec![]),
            node("Concat", "concat", &["s", "c"], &["j"], vec![("axis", Attr::Int(1))]),
            node("Conv", "conv_b", &["j", "b.w"], &["y"], vec![]),
        ],
        value_info: BTreeMap::new(),
    };
    let shapes = [
        ("x", vec![1, 3, 8, 8]),
        ("a", vec![1, 4, 8, 8]),
        ("r", vec![1, 4, 8, 8]),
        ("d", vec![1, 4, 8, 8]),
        ("s", vec![1, 4, 8, 8]),
        ("c", vec![1, 2, 8, 8]),
        ("j", vec![1, 6, 8, 8]),
        ("y", vec![1, 5, 8, 8]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_owned(), s))
    .collect();
    (graph, shapes)
}

fn analyse(graph: &Graph, shapes: &HashMap<String, Vec<usize>>) -> Analysis {
    groups::analyse(graph, &|n| shapes.get(n).cloned()).unwrap()
}

#[test]
fn groups_follow_depthwise_convs_biases_and_concat_offsets() {
    let (graph, shapes) = small_graph([1.0, 2.0, 3.0, 4.0]);
    let analysis = analyse(&graph, &shapes);
    let keys: Vec<&str> = analysis.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["a.w", "c.w"]);
    let a = &analysis.groups[0];
    assert_eq!((a.channels, a.key_axis), (4, 0));
    let members: Vec<(&str, usize, Vec<Option<usize>>)> = a
        .members
        .iter()
        .map(|m| (m.tensor.as_str(), m.axis, m.index_map.clone()))
        .collect();
    let identity: Vec<Option<usize>> = (0..4).map(Some).collect();
    assert_eq!(
        members,
        [
            ("a.w", 0, identity.clone()),
            ("a.b", 0, identity.clone()),
            ("d.w", 0, identity.clone()),
            ("bias", 1, identity.clone()),
            ("b.w", 1, identity.clone()),
        ]
    );
    // conv_c's channels sit after conv_a's in the concat, so at offset 4 of conv_b's input axis.
    let c = &analysis.groups[1];
    let b_member = c.members.iter().find(|m| m.tensor == "b.w").unwrap();
    assert_eq!(b_member.index_map, [Some(4), Some(5)]);
    // params: a.w 3 + a.b 1 + d.w 9 + b.w 5 per channel (the Add constant follows a depthwise conv, which
    // count's conventions count as a conv bias: 1 more); FLOPs: conv_a 3*64, conv_d 9*64, conv_b 5*64.
    assert_eq!(a.params, 4 * (3 + 1 + 9 + 1 + 5));
    assert_eq!(a.flops, 4 * 64 * (3 + 9 + 5));
    assert_eq!(analysis.excluded.len(), 1);
    assert_eq!(analysis.excluded[0].conv, "b.w");
    assert!(
        analysis.excluded[0].reason.contains("graph output 'y'"),
        "{:?}",
        analysis.excluded
    );
}

#[test]
fn criteria_rank_filters_as_documented() {
    let (graph, shapes) = small_graph([3.0, 1.0, 4.0, 2.0]);
    let analysis = analyse(&graph, &shapes);
    let a = &analysis.groups[0];
    // l1_norm: the key conv's mean |w| is 3, 1, 4, 2: half the channels are 1 and 3.
    assert_eq!(Criterion::L1Norm.select(&graph, a, 0.5).unwrap(), [1, 3]);
    assert_eq!(Criterion::L1Norm.importance(&graph, a).unwrap(), [3.0, 1.0, 4.0, 2.0]);
    // fpgm: filters are (s, s, s); distances sum to sqrt(3) * sum |s - s_j|: 4, 6, 6, 4 -> channels 0 and 3.
    let fpgm = Criterion::Fpgm.importance(&graph, a).unwrap();
    let expected = [4.0, 6.0, 6.0, 4.0].map(|v: f64| v * 3f64.sqrt());
    for (got, want) in fpgm.iter().zip(expected) {
        assert!((got - want).abs() < 1e-9, "{fpgm:?}");
    }
    assert_eq!(Criterion::Fpgm.select(&graph, a, 0.5).unwrap(), [0, 3]);
    // l1_norm_group adds every member's slice: it must differ from the key conv's own sum.
    let group = Criterion::L1NormGroup.importance(&graph, a).unwrap();
    let own = [9.0, 3.0, 12.0, 6.0];
    assert!(group.iter().zip(own).all(|(g, o)| *g > o), "{group:?}");
}

#[test]
fn masking_then_restoring_changes_no_bit() {
    let (mut graph, shapes) = small_graph([1.0, 2.0, 3.0, 4.0]);
    let original = graph.clone();
    let analysis = analyse(&graph, &shapes);
    let plan = Plan::from([("a.w".to_owned(), 0.5), ("c.w".to_owned(), 0.5)]);
    let cut = Cut::plan(&graph, &analysis, &plan, Criterion::L1Norm).unwrap();
    let masked = prune::mask(&mut graph, &cut.removed(&analysis));
    // conv_a's filters 0 and 1 (the smallest) are zero, and conv_b reads nothing from them nor from conv_c's filter 1 (mean |w| 0.1 < 0.2).
    let a = graph.constants["a.w"].values::<f32>().unwrap();
    assert!(a[..6].iter().all(|&v| v == 0.0) && a[6..].iter().all(|&v| v != 0.0));
    let b = graph.constants["b.w"].values::<f32>().unwrap();
    for row in b.chunks(6) {
        assert_eq!((row[0], row[1], row[5]), (0.0, 0.0, 0.0));
    }
    assert_ne!(graph.constants, original.constants);
    prune::restore(&mut graph, masked);
    assert_eq!(graph, original);
}

#[test]
fn structural_pruning_shrinks_every_member_and_depthwise_groups() {
    let (graph, shapes) = small_graph([1.0, 2.0, 3.0, 4.0]);
    let analysis = analyse(&graph, &shapes);
    let plan = Plan::from([("a.w".to_owned(), 0.5), ("c.w".to_owned(), 0.5)]);
    let cut = Cut::plan(&graph, &analysis, &plan, Criterion::L1Norm).unwrap();
    let pruned = structural::prune(&graph, &analysis, &cut).unwrap();
    let dims = |name: &str| pruned.graph.constants[name].dims().to_vec();
    assert_eq!(dims("a.w"), [2, 3, 1, 1]);
    assert_eq!(dims("a.b"), [2]);
    assert_eq!(dims("d.w"), [2, 1, 3, 3]);
    assert_eq!(dims("bias"), [1, 2, 1, 1]);
    assert_eq!(dims("c.w"), [1, 3, 1, 1]);
    assert_eq!(dims("b.w"), [5, 3, 1, 1]);
    let depthwise = pruned.graph.nodes.iter().find(|n| n.name == "conv_d").unwrap();
    assert_eq!(depthwise.attr_int("group").unwrap(), Some(2));
    assert_eq!(pruned.kept["b.w"], [(1, vec![2, 3, 4])]);
    // The kept values are the original ones.
    let before = graph.constants["a.w"].values::<f32>().unwrap();
    assert_eq!(pruned.graph.constants["a.w"].values::<f32>().unwrap(), before[6..]);
}

#[test]
fn plans_name_what_is_wrong() {
    let (graph, shapes) = small_graph([1.0, 2.0, 3.0, 4.0]);
    let analysis = analyse(&graph, &shapes);
    let error = |plan: Plan| {
        Cut::plan(&graph, &analysis, &plan, Criterion::L1Norm)
            .unwrap_err()
            .to_string()
    };
    assert!(error(Plan::from([("nope".to_owned(), 0.1)])).contains("unknown group key 'nope'"));
    assert!(error(Plan::from([("b.w".to_owned(), 0.1)])).contains("group 'b.w' cannot be pruned"));
    assert!(error(Plan::from([("a.w".to_owned(), -0.1)])).contains("outside [0, 1)"));
}
