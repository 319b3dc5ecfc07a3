//! The plots of `coordinator results` (issue 15): every file is written and reads back (PNGs decode, the SVG
//! parses and names its groups and threshold), and the heatmap never draws a skipped or failed cell as a loss
//! of zero, checked on its pixels. Text needs the font setup fetches (`fonts/DejaVuSans.ttf`), found from the
//! test binary in target/release.

use std::collections::HashMap;
use std::path::Path;

use sensgrid_coordinator::planning;
use sensgrid_coordinator::plots::{self, Cell, Grid, Group, PlannedGroup};
use sensgrid_coordinator::results::RunResults;
use sensgrid_proto::v1 as pb;
use serde_json::json;

const RATIOS: [f64; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

/// 5 groups by 8 ratios: group 2 skipped whole, skipped cells and a failed one in group 1, pending cells in
/// group 4, and a done cell of loss 0.0 at (0, 0).
fn grid() -> Grid {
    let done = |scale: f64| -> Vec<Cell> { RATIOS.iter().map(|r| Cell::Done(scale * r * r)).collect() };
    let mut first = done(0.3);
    first[0] = Cell::Done(0.0);
    first[1] = Cell::Done(-0.01);
    let mut second = done(0.8);
    second[6] = Cell::Skipped;
    second[7] = Cell::Skipped;
    second[3] = Cell::Failed;
    let mut last = done(0.1);
    last[5..].fill(Cell::Pending);
    let group = |key: &str, channels, skipped, cells| Group {
        key: key.into(),
        channels,
        skipped,
        cells,
    };
    let plan = [
        ("conv2d_0.w_0", 0.3, 16),
        ("conv2d_1.w_0", 0.1, 64),
        ("conv2d_3.w_0", 0.5, 96),
    ];
    Grid {
        metric: "hmean".into(),
        max_loss: Some(0.05),
        ratios: RATIOS.to_vec(),
        groups: vec![
            group("conv2d_0.w_0", 16, false, first),
            group("conv2d_1.w_0", 64, false, second),
            group("conv2d_2.w_0", 32, true, vec![Cell::Skipped; RATIOS.len()]),
            group("conv2d_3.w_0", 96, false, done(0.05)),
            group("backbone.stage4.conv_long_name.w_0", 128, false, last),
        ],
        plan: Some(
            plan.iter()
                .map(|&(key, ratio, channels)| PlannedGroup {
                    key: key.into(),
                    ratio,
                    channels_before: channels,
                    channels_after: channels - (channels as f64 * ratio).round() as usize,
                })
                .collect(),
        ),
    }
}

/// A decoded RGB(A) PNG.
struct Image {
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let decoder = png::Decoder::new(std::io::BufReader::new(file));
        let mut reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut pixels = vec![0; reader.output_buffer_size().expect("a plot fits in memory")];
        let frame = reader
            .next_frame(&mut pixels)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(frame.bit_depth, png::BitDepth::Eight, "{}", path.display());
        let channels = frame.color_type.samples();
        assert!(channels >= 3, "{}: {:?}", path.display(), frame.color_type);
        pixels.truncate(frame.buffer_size());
        Image {
            width: frame.width,
            height: frame.height,
            channels,
            pixels,
        }
    }

    fn pixel(&self, (x, y): (u32, u32)) -> (u8, u8, u8) {
        let at = (y as usize * self.width as usize + x as usize) * self.channels;
        (self.pixels[at], self.pixels[at + 1], self.pixels[at + 2])
    }

    /// The most common colour of a rectangle: a cell's fill, whatever mark or hatching is drawn over it.
    fn fill(&self, ((x0, y0), (x1, y1)): ((u32, u32), (u32, u32))) -> (u8, u8, u8) {
        let mut counts: HashMap<(u8, u8, u8), usize> = HashMap::new();
        for y in y0 + 2..y1 - 2 {
            for x in x0 + 2..x1 - 2 {
                *counts.entry(self.pixel((x, y))).or_default() += 1;
            }
        }
        counts.into_iter().max_by_key(|&(color, n)| (n, color)).unwrap().0
    }
}

fn rgb(color: plotters::style::RGBColor) -> (u8, u8, u8) {
    (color.0, color.1, color.2)
}

#[test]
fn plots_are_written_and_read_back() {
    let out = tempfile::tempdir().unwrap();
    let grid = grid();
    let files = plots::write(&grid, out.path()).expect("the plots are drawn (setup fetches fonts/DejaVuSans.ttf)");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["sensitivity.png", "sensitivity.svg", "heatmap.png", "pruned.png"]
    );
    for file in &files {
        assert!(
            std::fs::metadata(file).unwrap().len() > 1000,
            "{} is nearly empty",
            file.display()
        );
    }

    let sensitivity = Image::read(&out.path().join("sensitivity.png"));
    assert_eq!((sensitivity.width, sensitivity.height), plots::SENSITIVITY_SIZE);
    let heatmap = Image::read(&out.path().join("heatmap.png"));
    assert_eq!((heatmap.width, heatmap.height), plots::heatmap_size(&grid));
    assert!(
        heatmap.width >= 400 && heatmap.height >= 5 * plots::CELL_SIZE.1,
        "{}x{}",
        heatmap.width,
        heatmap.height
    );
    let pruned = Image::read(&out.path().join("pruned.png"));
    assert_eq!(
        (pruned.width, pruned.height),
        plots::pruned_size(grid.plan.as_deref().unwrap())
    );

    let svg = std::fs::read_to_string(out.path().join("sensitivity.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("sensitivity.svg is XML");
    let text: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n");
    for group in grid.groups.iter().filter(|g| !g.skipped) {
        assert!(text.contains(&group.key), "sensitivity.svg names {}", group.key);
    }
    assert!(!text.contains("conv2d_2.w_0"), "the skipped group has no curve");
    assert!(text.contains("max_loss 0.05"), "sensitivity.svg labels the threshold");
    assert!(text.contains("hmean"), "the title names the metric");
}

#[test]
fn heatmap_never_draws_skipped_or_failed_as_a_loss() {
    let out = tempfile::tempdir().unwrap();
    let grid = grid();
    plots::write(&grid, out.path()).unwrap();
    let heatmap = Image::read(&out.path().join("heatmap.png"));
    let fill = |row, col| heatmap.fill(plots::heatmap_cell_rect(&grid, row, col));
    let (skipped, failed, pending) = (
        rgb(plots::SKIPPED_COLOR),
        rgb(plots::FAILED_COLOR),
        rgb(plots::PENDING_COLOR),
    );

    // The centre helper lies inside its rectangle.
    let ((x0, y0), (x1, y1)) = plots::heatmap_cell_rect(&grid, 1, 6);
    let (cx, cy) = plots::heatmap_cell_center(&grid, 1, 6);
    assert!((x0..x1).contains(&cx) && (y0..y1).contains(&cy));

    assert_eq!(fill(1, 6), skipped, "a skipped cell");
    assert_eq!(fill(1, 7), skipped, "a skipped cell");
    for col in 0..RATIOS.len() {
        assert_eq!(fill(2, col), skipped, "the skipped group's cell {col}");
    }
    assert_eq!(fill(1, 3), failed, "the failed cell");
    for col in 5..RATIOS.len() {
        assert_eq!(fill(4, col), pending, "a pending cell is empty");
    }
    let zero = fill(0, 0);
    assert_eq!(zero, rgb(plots::ZERO_LOSS_COLOR), "a loss of 0.0");
    for mark in [skipped, failed, pending] {
        assert_ne!(zero, mark, "a loss of 0.0 looks like no mark");
    }
    assert_ne!(fill(0, 1), zero, "a negative loss is not drawn as zero");
    assert_ne!(fill(1, 5), zero, "a large loss is not drawn as zero");
}

#[test]
fn run_results_draw_their_grid_with_the_other_files() {
    let spec = json!({
        "name": "det",
        "metric": "hmean",
        "ratios": [0.1, 0.2],
        "groups": [
            {"key": "a", "channels": 8, "params": 0, "flops": 0, "convs": []},
            {"key": "b", "channels": 16, "params": 0, "flops": 0, "convs": []},
        ],
        "skipped": [{"key": "s", "channels": 4, "params": 0, "flops": 0, "convs": []}],
        "prune": {"target": {"max_loss": 0.05}, "export": false},
    });
    let job = |kind: &str, state: &str, key: &str, ratio: f64, result: serde_json::Value| pb::JobStatus {
        kind: pb::JobKind::parse(kind).unwrap().into(),
        state: pb::JobState::parse(state).unwrap().into(),
        group_key: key.into(),
        ratio,
        result_json: if result.is_null() {
            String::new()
        } else {
            result.to_string()
        },
        ..Default::default()
    };
    let run = pb::GetRunResponse {
        run_id: 7,
        state: pb::RunState::Done.into(),
        spec_json: spec.to_string(),
        plan_json: json!({"a": 0.2, "b": 0.0}).to_string(),
        jobs: vec![
            job("baseline", "done", "", 0.0, json!({"metrics": {"hmean": 0.8}})),
            job("cell", "done", "a", 0.1, json!({"metrics": {"hmean": 0.8}})),
            job("cell", "done", "a", 0.2, json!({"metrics": {"hmean": 0.6}})),
            job("cell", "failed", "b", 0.1, serde_json::Value::Null),
            job("cell", "leased", "b", 0.2, serde_json::Value::Null),
        ],
        ..Default::default()
    };
    let results = RunResults::new(&run, &[]).unwrap();
    let grid = results.plot_grid();
    assert_eq!(grid.max_loss, Some(0.05));
    assert_eq!(grid.ratios, [0.1, 0.2]);
    let rows: Vec<(&str, bool, &[Cell])> = grid
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.skipped, g.cells.as_slice()))
        .collect();
    assert_eq!(
        rows,
        [
            ("a", false, &[Cell::Done(0.0), Cell::Done((0.8 - 0.6) / 0.8)][..]),
            ("b", false, &[Cell::Failed, Cell::Pending][..]),
            ("s", true, &[Cell::Pending, Cell::Pending][..]),
        ]
    );
    let plan = grid.plan.as_deref().unwrap();
    assert_eq!(plan.len(), 2);
    assert_eq!((plan[0].channels_before, plan[0].channels_after), (8, 6));
    assert_eq!((plan[1].channels_before, plan[1].channels_after), (16, 16));

    let out = tempfile::tempdir().unwrap();
    let written = results.write(out.path()).unwrap();
    for name in [
        "sen.pickle",
        "sensitivities.csv",
        "plan.json",
        "sensitivity.png",
        "heatmap.png",
        "pruned.png",
    ] {
        let path = out.path().join(name);
        assert!(path.is_file() && written.files.contains(&path), "{name} is written");
    }
}

/// A run with a measured target (issue 21): four done probes up the chain, the third chosen (its plan is the
/// run's, to within rounding), the fourth over `max_model_loss`, and a failed fifth; the export scored the
/// chosen plan.
fn probed_run() -> pb::GetRunResponse {
    let spec = json!({
        "name": "det",
        "metric": "hmean",
        "ratios": [0.1, 0.2],
        "groups": [
            {"key": "a", "channels": 8, "params": 100, "flops": 4000, "convs": []},
            {"key": "b", "channels": 16, "params": 200, "flops": 6000, "convs": []},
            {"key": "c", "channels": 32, "params": 300, "flops": 9000, "convs": []},
        ],
        "prune": {
            "target": {"measured": {"max_model_loss": 0.02, "flops_reduction": null, "latency_reduction": null,
                                    "tolerance": 0.01}},
            "export": true,
        },
    });
    let report = |flops_after: f64, latency_after: f64| {
        json!({
            "flops_before": 1_000_000.0, "flops_after": flops_after,
            "params_before": 50_000.0, "params_after": flops_after / 20.0,
            "latency_ms_before": 40.0, "latency_ms_after": latency_after,
            // The worker's paired estimates: the median, and the pessimistic one a latency target is judged by
            // (see `planning::measurement`).
            "latency_reduction": 1.0 - latency_after / 40.0,
            "latency_reduction_low": 1.0 - (latency_after + 1.0) / 40.0,
        })
    };
    let probe = |step: u32, state: &str, plan: serde_json::Value, hmean: f64, flops_after: f64, latency: f64| {
        let result = json!({
            "metrics": {"hmean": hmean, "precision": hmean, "recall": hmean, "num_samples": 20},
            "report": report(flops_after, latency),
            "seconds": 3.2,
            "device": "cpu",
        });
        pb::JobStatus {
            job_id: 100 + i64::from(step),
            kind: pb::JobKind::Probe.into(),
            state: pb::JobState::parse(state).unwrap().into(),
            probe_step: step,
            plan_json: plan.to_string(),
            result_json: if state == "done" {
                result.to_string()
            } else {
                String::new()
            },
            done_by: if state == "done" { 3 } else { 0 },
            last_error: if state == "done" {
                String::new()
            } else {
                "worker lost".into()
            },
            ..Default::default()
        }
    };
    let job = |kind: &str, key: &str, ratio: f64, result: serde_json::Value| pb::JobStatus {
        kind: pb::JobKind::parse(kind).unwrap().into(),
        state: pb::JobState::Done.into(),
        group_key: key.into(),
        ratio,
        result_json: result.to_string(),
        ..Default::default()
    };
    let chosen = json!({"a": 0.2, "b": 0.1, "c": 0.0});
    let mut export = json!({
        "metrics": {"hmean": 0.7912},
        "report": report(700_000.0, 31.0),
        "device": "cpu",
        "artifact_digest": "sha256:00",
    });
    export["seconds"] = json!(5.0);
    pb::GetRunResponse {
        run_id: 21,
        state: pb::RunState::Done.into(),
        spec_json: spec.to_string(),
        // Listed in another order and rounded otherwise than the probe's: still the same plan.
        plan_json: json!({"c": 0.0, "b": 0.1 + 1e-15, "a": 0.2}).to_string(),
        jobs: vec![
            job("baseline", "", 0.0, json!({"metrics": {"hmean": 0.8}})),
            job("cell", "a", 0.1, json!({"metrics": {"hmean": 0.8}})),
            job("cell", "b", 0.1, json!({"metrics": {"hmean": 0.79}})),
            // Out of step order, as the store may list them.
            probe(4, "done", json!({"a": 0.2, "b": 0.2, "c": 0.1}), 0.78, 550_000.0, 26.0),
            probe(1, "done", json!({"a": 0.1, "b": 0.0, "c": 0.0}), 0.8, 900_000.0, 37.0),
            probe(3, "done", chosen, 0.7912, 700_000.0, 31.0),
            probe(2, "done", json!({"a": 0.2, "b": 0.0, "c": 0.0}), 0.796, 800_000.0, 34.0),
            probe(5, "failed", json!({"a": 0.2, "b": 0.2, "c": 0.2}), 0.0, 0.0, 0.0),
            job("export", "", 0.0, export),
        ],
        ..Default::default()
    }
}

#[test]
fn probes_are_tabled_and_drawn_with_the_chosen_one_marked() {
    let run = probed_run();
    let workers = [pb::WorkerSummary {
        worker_id: 3,
        name: "gpu-a".into(),
        device: "cuda:0".into(),
        ..Default::default()
    }];
    let results = RunResults::new(&run, &workers).unwrap();
    let out = tempfile::tempdir().unwrap();
    let written = results.write(out.path()).unwrap();
    for name in [
        "probes.csv",
        "probes.json",
        "prune_report.json",
        "tradeoff.png",
        "tradeoff.svg",
    ] {
        let path = out.path().join(name);
        assert!(path.is_file() && written.files.contains(&path), "{name} is written");
    }
    let loss = |hmean: f64| (0.8 - hmean) / 0.8;

    let mut csv = csv::Reader::from_path(out.path().join("probes.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "step",
            "state",
            "groups_cut",
            "flops_before",
            "flops_after",
            "flops_reduction",
            "params_after",
            "latency_ms_before",
            "latency_ms_after",
            "latency_reduction",
            "hmean",
            "loss",
            "worker",
            "device",
            "seconds",
            "chosen",
            "plan"
        ]
    );
    let rows: Vec<HashMap<String, String>> = csv
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect();
    let column = |name: &str| -> Vec<&str> { rows.iter().map(|r| r[name].as_str()).collect() };
    assert_eq!(column("step"), ["1", "2", "3", "4", "5"], "in step order");
    assert_eq!(column("state"), ["done", "done", "done", "done", "failed"]);
    assert_eq!(column("chosen"), ["false", "false", "true", "false", "false"]);
    assert_eq!(column("groups_cut"), ["1", "1", "2", "3", "3"]);
    assert_eq!(column("flops_after"), ["900000", "800000", "700000", "550000", ""]);
    assert_eq!(column("worker"), ["gpu-a", "gpu-a", "gpu-a", "gpu-a", ""]);
    let chosen = &rows[2];
    assert_eq!(
        chosen["flops_reduction"].parse::<f64>().unwrap(),
        1.0 - 700_000.0 / 1_000_000.0
    );
    // The latency reduction is the search's own reading of the probe's report.
    let chosen_result: serde_json::Value = run
        .jobs
        .iter()
        .find(|j| j.probe_step == 3)
        .map(|j| serde_json::from_str(&j.result_json).unwrap())
        .unwrap();
    let searched = planning::measurement(3, &chosen_result, 0.8, "hmean").unwrap();
    assert_eq!(
        chosen["latency_reduction"].parse::<f64>().unwrap(),
        searched.latency_reduction
    );
    assert_eq!(searched.loss, loss(0.7912));
    assert_eq!(chosen["loss"].parse::<f64>().unwrap(), loss(0.7912));
    assert_eq!(chosen["hmean"], "0.7912");
    assert_eq!(chosen["plan"], r#"{"a":0.2,"b":0.1,"c":0.0}"#);
    assert_eq!(rows[4]["loss"], "", "a failed probe has no loss");

    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.path().join(name)).unwrap()).unwrap()
    };
    let probes = read("probes.json");
    assert_eq!(probes["prune"]["target"]["measured"]["max_model_loss"], json!(0.02));
    assert_eq!(probes["chosen_step"], json!(3));
    let listed = probes["probes"].as_array().unwrap();
    let flags: Vec<(u64, bool)> = listed
        .iter()
        .map(|p| (p["step"].as_u64().unwrap(), p["chosen"].as_bool().unwrap()))
        .collect();
    assert_eq!(flags, [(1, false), (2, false), (3, true), (4, false), (5, false)]);
    assert_eq!(listed[2]["plan"], json!({"a": 0.2, "b": 0.1, "c": 0.0}));
    assert_eq!(listed[2]["metrics"]["num_samples"], json!(20));
    assert_eq!(listed[2]["worker"]["name"], json!("gpu-a"));
    assert_eq!(listed[4]["error"], json!("worker lost"));

    let target = &read("prune_report.json")["target"];
    assert_eq!(target["kind"], json!("measured"));
    assert_eq!(target["probe_step"], json!(3));
    assert_eq!(target["probes"], json!(4), "the done probes");
    assert_eq!(target["held"], json!(["max_model_loss"]));
    let number = |key: &str| target[key].as_f64().unwrap_or_else(|| panic!("{key}: {target}"));
    assert_eq!(number("measured_loss"), loss(0.7912));
    assert_eq!(number("export_loss"), number("measured_loss"));
    assert!(
        (number("loss_margin") - (0.02 - loss(0.7912))).abs() < 1e-12,
        "{target}"
    );
    assert_eq!(number("flops_reduction"), 1.0 - 700_000.0 / 1_000_000.0);

    let tradeoff = results.tradeoff().unwrap();
    let points: Vec<(u32, bool)> = tradeoff.points.iter().map(|p| (p.step, p.chosen)).collect();
    assert_eq!(
        points,
        [(1, false), (2, false), (3, true), (4, false)],
        "the done probes"
    );
    assert_eq!(tradeoff.axis, plots::tradeoff::Axis::Flops);
    assert_eq!(tradeoff.max_model_loss, Some(0.02));
    let png = Image::read(&out.path().join("tradeoff.png"));
    assert_eq!((png.width, png.height), plots::tradeoff::SIZE);
    let ring = rgb(plots::tradeoff::CHOSEN_COLOR);
    let ringed = (0..png.height)
        .flat_map(|y| (0..png.width).map(move |x| (x, y)))
        .filter(|&p| png.pixel(p) == ring)
        .count();
    assert!(ringed > 30, "the chosen probe is ringed ({ringed} pixels)");

    let svg = std::fs::read_to_string(out.path().join("tradeoff.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("tradeoff.svg is XML");
    let text: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("max_model_loss 0.02"),
        "tradeoff.svg labels the bound: {text}"
    );
    assert!(text.contains("chosen (step 3)"), "{text}");
    assert!(
        text.contains("hmean") && text.contains("det (run 21)"),
        "the title names the run and metric"
    );

    // A latency target: the x axis is the measured latency reduction, with the target drawn upright.
    let latency = plots::tradeoff::Tradeoff {
        axis: plots::tradeoff::Axis::Latency,
        reduction_target: Some(0.2),
        ..tradeoff
    };
    let out = tempfile::tempdir().unwrap();
    plots::tradeoff::write(&latency, out.path()).unwrap();
    let svg = std::fs::read_to_string(out.path().join("tradeoff.svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("tradeoff.svg is XML");
    assert!(
        svg.contains("latency_reduction 0.2") && svg.contains("latency reduction"),
        "{svg}"
    );
}
