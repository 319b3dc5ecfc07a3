//! Issue 25's recovery by distillation: one step on a tiny model lowers the loss and changes only the student's
//! weights, `recovered.onnx` computes in onnxruntime what the engine computes, and `worker recover` runs end to
//! end on PP-OCRv3 det pruned by a plan, a recovery stopped after a checkpoint resumes from it to the weights and
//! the history of an uninterrupted one, and a checkpoint that does not load (garbage, truncated, of another
//! student or other options, out of range, not finite) is refused with the file and the reason, or, as a job
//! does it, discarded for a start from step 0.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use sensgrid_eval::Config;
use sensgrid_eval::dataset::{Dataset, OpenOptions};
use sensgrid_model::analysis::groups;
use sensgrid_model::ir::{Graph, Node};
use sensgrid_model::onnx;
use sensgrid_model::prune::{Criterion, Cut, Plan, structural};
use sensgrid_worker::exec::Executor;
use sensgrid_worker::recover::checkpoint::Checkpoint;
use sensgrid_worker::recover::train::{Trainer, distillation_loss, trainable_names};
use sensgrid_worker::recover::{
    Best, CHECKPOINT_FILE, Distillation, Options, RECOVERED_FILE, Recovery, Step, TrainSet, UnloadableCheckpoint,
};
use tch::{Device, Kind, Tensor};

use crate::oracle::{json, mismatch, model, npy, root, scratch, worker};

/// The fixture CNN (Conv, BatchNormalization, a residual Add, Gemm) with `head` (Sigmoid: a det-like
/// probability per output; Softmax: a class distribution) on its logits.
fn with_head(graph: &Graph, head: &str) -> Graph {
    let mut graph = graph.clone();
    let logits = graph.outputs[0].name.clone();
    let probabilities = format!("{logits}_{head}");
    graph.nodes.push(Node {
        name: probabilities.clone(),
        op_type: head.to_owned(),
        domain: String::new(),
        inputs: vec![logits],
        outputs: vec![probabilities.clone()],
        attributes: Vec::new(),
    });
    graph.outputs[0].name = probabilities;
    graph
}

/// The fixture with half of its first channel group removed.
fn small_cnn_and_pruned() -> (Graph, Graph) {
    let original = onnx::read(&root().join("worker/tests/fixtures/small_cnn/model.onnx")).unwrap();
    let analysis = groups::analyse_at(&original, &[vec![1, 3, 32, 32]]).unwrap();
    let plan: Plan = [(analysis.groups[0].key.clone(), 0.5)].into();
    let cut = Cut::plan(&original, &analysis, &plan, Criterion::default()).unwrap();
    let pruned = structural::prune(&original, &analysis, &cut).unwrap().graph;
    (original, pruned)
}

fn constants(executor: &Executor, graph: &Graph) -> Vec<(String, Tensor)> {
    graph
        .constants
        .keys()
        .map(|name| (name.clone(), executor.constant(name).unwrap().detach().copy()))
        .collect()
}

#[test]
fn one_recover_step_lowers_the_loss_changes_only_the_student_and_exports_what_onnxruntime_runs() {
    let (original, pruned) = small_cnn_and_pruned();
    let dir = scratch("recover", "tiny");
    let input = root().join("worker/tests/fixtures/small_cnn/input.npy");
    tch::manual_seed(25);
    let batch = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    for (head, distillation) in [
        ("Sigmoid", Distillation::ProbabilityMap),
        ("Softmax", Distillation::ClassDistribution),
    ] {
        let (teacher_graph, student_graph) = (with_head(&original, head), with_head(&pruned, head));
        let teacher = Executor::new(&teacher_graph, Device::Cpu).unwrap();
        let student = Executor::new(&student_graph, Device::Cpu).unwrap();
        let teacher_before = constants(&teacher, &teacher_graph);
        let student_before = constants(&student, &student_graph);

        let mut trainer = Trainer::new(&student, &student_graph).unwrap();
        let loss = |student: &Executor| {
            tch::no_grad(|| {
                distillation_loss(&teacher, student, distillation, &batch)
                    .unwrap()
                    .double_value(&[])
            })
        };
        let before = loss(&student);
        let stepped = trainer.step(&teacher, &student, distillation, &batch, 1e-3).unwrap();
        assert!(
            (stepped - before).abs() < 1e-6,
            "{head}: step reported {stepped}, loss was {before}"
        );
        let after = loss(&student);
        assert!(after < before, "{head}: loss {before} -> {after}");

        // The teacher's weights are bit for bit as loaded; the student's trained ones moved, its running
        // statistics (and anything else not trained) did not.
        for (name, tensor) in &teacher_before {
            assert!(
                tensor.equal(teacher.constant(name).unwrap()),
                "{head}: teacher's '{name}' changed"
            );
        }
        let trained = trainable_names(&student_graph);
        assert!(!trained.is_empty());
        for (name, tensor) in &student_before {
            let unchanged = tensor.equal(student.constant(name).unwrap());
            assert_eq!(unchanged, !trained.contains(name), "{head}: student's '{name}'");
        }

        // recovered.onnx: the student's graph with the trained weights, in our engine and in onnxruntime.
        let path = dir.join(format!("recovered_{head}.onnx"));
        onnx::write(&trainer.export(&student_graph).unwrap(), &path).unwrap();
        let x = npy(&input);
        let trained_output = &student.run(std::slice::from_ref(&x)).unwrap()[0];
        let reloaded = onnx::read(&path).unwrap();
        assert_eq!(reloaded.inputs, student_graph.inputs);
        assert_eq!(reloaded.outputs, student_graph.outputs);
        let engine = &Executor::new(&reloaded, Device::Cpu)
            .unwrap()
            .run(std::slice::from_ref(&x))
            .unwrap()[0];
        assert!(
            engine.equal(trained_output),
            "{head}: the written weights differ from the trained ones"
        );
        let status = Command::new(root().join(".oracle/bin/python"))
            .arg(root().join("scripts/oracle/run_models.py"))
            .arg(&input)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let ort = npy(&dir.join(format!("recovered_{head}.ort.npy")));
        if let Some(problem) = mismatch(engine, &ort, 1e-4) {
            panic!("{head}: recovered.onnx in the engine vs onnxruntime: {problem}");
        }
    }
}

/// `worker synth det` into `dir`.
fn synth_det(dir: &Path, count: usize, seed: u64) {
    synth("det", dir, count, seed);
}

/// `worker synth KIND` into `dir`.
fn synth(kind: &str, dir: &Path, count: usize, seed: u64) {
    let output = worker(&[
        "synth",
        kind,
        "--out",
        &dir.display().to_string(),
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn worker_recover_trains_pp_ocrv3_det_pruned_by_a_plan_and_resumes_from_its_checkpoint() {
    let dir = scratch("recover", "v3det");
    let (eval_set, train_set) = (dir.join("eval"), dir.join("train"));
    synth_det(&eval_set, 1, 1);
    synth_det(&train_set, 2, 2);
    let teacher = model("ch_PP-OCRv3_det_infer.onnx");
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        r#"{"conv2d_4.w_0": 0.5, "conv2d_6.w_0": 0.5, "conv2d_12.w_0": 0.5}"#,
    )
    .unwrap();
    let student = dir.join("pruned.onnx").display().to_string();
    let output = worker(&[
        "prune",
        "--model",
        &teacher,
        "--plan",
        &plan.display().to_string(),
        "--out",
        &student,
        "--input-shape",
        "1,3,320,320",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let out = dir.join("out");
    // A checkpoint left by an earlier run of this test would be resumed.
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    let config = root().join("examples/configs/det_ppocrv3.yml").display().to_string();
    let eval_labels = eval_set.join("label.txt").display().to_string();
    let eval_dir = format!("Eval.dataset.data_dir={}", eval_set.display());
    let eval_list = format!("Eval.dataset.label_file_list=[{eval_labels}]");
    let recover = |steps: &str| {
        let output = worker(&[
            "recover",
            "--teacher",
            &teacher,
            "--student",
            &student,
            "-c",
            &config,
            "-o",
            &eval_dir,
            &eval_list,
            // Options from the config's Recover section, others from flags.
            "Recover.batch_size=2",
            "Recover.input_size=256",
            "Recover.seed=7",
            "--out",
            &out.display().to_string(),
            "--data-dir",
            &train_set.display().to_string(),
            "--label-file-list",
            &train_set.join("label.txt").display().to_string(),
            "--steps",
            steps,
            "--learning-rate",
            "1e-3",
            "--eval-every",
            "2",
            "--checkpoint-every",
            "1",
            "--device",
            "cpu",
        ]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        json(&out.join("recover_report.json"))
    };
    let report = recover("2");
    assert_eq!(report["metric"], "hmean");
    assert_eq!(report["steps"], 2);
    assert_eq!(report["device"], "cpu");
    assert_eq!(
        (&report["batch_size"], &report["input_size"], &report["seed"]),
        (&2.into(), &256.into(), &7.into())
    );
    let history = report["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|h| h["loss"].as_f64().unwrap().is_finite()));
    assert!(history[1]["metric"].is_f64(), "{report}");
    for key in ["baseline", "pruned", "recovered"] {
        assert!((0.0..=1.0).contains(&report[key].as_f64().unwrap()), "{key}: {report}");
    }
    assert!(report["recovered"].as_f64() >= report["pruned"].as_f64());
    // The recovered model loads and keeps the pruned model's inputs and outputs.
    let recovered = onnx::read(&out.join("recovered.onnx")).unwrap();
    let pruned = onnx::read(Path::new(&student)).unwrap();
    assert_eq!(
        (&recovered.inputs, &recovered.outputs),
        (&pruned.inputs, &pruned.outputs)
    );

    // A second run with the same options finds the finished checkpoint, trains no further and reports the
    // steps the checkpoint holds.
    let resumed = recover("2");
    assert_eq!(resumed["resumed_at"], 2);
    assert_eq!(resumed["history"], report["history"]);
    assert_eq!(resumed["recovered"], report["recovered"]);

    // The CLI's steps see different crops, so their losses go up and down: on one whole training image, as
    // the eval transforms make it (halved), two steps lower the loss.
    let overrides = [
        format!("Eval.dataset.data_dir={}", train_set.display()),
        format!(
            "Eval.dataset.label_file_list=[{}]",
            train_set.join("label.txt").display()
        ),
    ];
    let config = Config::load(&config, &overrides).unwrap();
    let sample = Dataset::open(config.eval_dataset(), &OpenOptions::default())
        .unwrap()
        .get(0)
        .unwrap();
    let [c, h, w] = sample.shape.map(|d| d as i64);
    // At half the size (still a multiple of 32, as DB needs), to keep the test short.
    let image = Tensor::from_slice(&sample.image)
        .reshape([1, c, h, w])
        .upsample_bilinear2d([h / 64 * 32, w / 64 * 32], false, None, None);
    let teacher = Executor::new(&onnx::read(Path::new(&teacher)).unwrap(), Device::Cpu).unwrap();
    let student = Executor::new(&pruned, Device::Cpu).unwrap();
    let mut trainer = Trainer::new(&student, &pruned).unwrap();
    let distillation = Distillation::ProbabilityMap;
    let first = trainer.step(&teacher, &student, distillation, &image, 3e-4).unwrap();
    trainer.step(&teacher, &student, distillation, &image, 3e-4).unwrap();
    let last = tch::no_grad(|| {
        distillation_loss(&teacher, &student, distillation, &image)
            .unwrap()
            .double_value(&[])
    });
    assert!(last < first, "loss {first} -> {last}");
}

#[test]
fn a_recovery_stopped_after_a_checkpoint_resumes_to_the_weights_and_history_of_an_uninterrupted_one() {
    let dir = scratch("recover", "resume");
    let (eval_set, train_set) = (dir.join("eval"), dir.join("train"));
    synth_det(&eval_set, 1, 1);
    synth_det(&train_set, 2, 2);
    let teacher = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let original = onnx::read(&teacher).unwrap();
    let analysis = groups::analyse_at(&original, &[vec![1, 3, 320, 320]]).unwrap();
    let plan: Plan = [("conv2d_4.w_0".to_owned(), 0.5)].into();
    let cut = Cut::plan(&original, &analysis, &plan, Criterion::default()).unwrap();
    let student = dir.join("pruned.onnx");
    onnx::write(&structural::prune(&original, &analysis, &cut).unwrap().graph, &student).unwrap();

    let config = |model: &Path| {
        let overrides = [
            format!("Global.pretrained_model={}", model.display()),
            format!("Eval.dataset.data_dir={}", eval_set.display()),
            format!(
                "Eval.dataset.label_file_list=[{}]",
                eval_set.join("label.txt").display()
            ),
        ];
        Config::load(root().join("examples/configs/det_ppocrv3.yml"), &overrides).unwrap()
    };
    let set = TrainSet {
        data_dir: train_set.clone(),
        label_file_list: vec![train_set.join("label.txt")],
    };
    let options = Options {
        steps: 3,
        batch_size: 1,
        learning_rate: 3e-4,
        input_size: 128,
        seed: 5,
        checkpoint_every: 2,
        eval_every: 3,
    };
    let run_as = |out: &Path, killed_after: Option<u64>, unloadable_checkpoint| {
        let recovery = Recovery {
            teacher: config(&teacher),
            student: config(&student),
            train_set: &set,
            options: &options,
            device: Device::Cpu,
            out_dir: out,
            unloadable_checkpoint,
        };
        recovery.run(&mut |progress| match killed_after {
            Some(step) if progress.step == step => anyhow::bail!("killed after step {step}"),
            _ => Ok(()),
        })
    };
    let run = |out: &Path, killed_after| run_as(out, killed_after, UnloadableCheckpoint::Refuse);
    let (whole, cut_short, garbage) = (dir.join("whole"), dir.join("cut_short"), dir.join("garbage"));
    for out in [&whole, &cut_short, &garbage] {
        if out.exists() {
            std::fs::remove_dir_all(out).unwrap();
        }
    }
    let uninterrupted = run(&whole, None).unwrap();
    assert!(run(&cut_short, Some(2)).is_err());
    assert!(!cut_short.join(RECOVERED_FILE).exists());
    let resumed = run(&cut_short, None).unwrap();
    assert_eq!(resumed.resumed_at, 2);
    assert_eq!(resumed.recovered, uninterrupted.recovered);
    // Every step once, the killed attempt's two from the checkpoint, and the losses bit for bit as the
    // weights are.
    assert_eq!(
        uninterrupted.history.iter().map(|s| s.step).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(resumed.history, uninterrupted.history);
    for (r, u) in resumed.history.iter().zip(&uninterrupted.history) {
        assert_eq!(r.loss.to_bits(), u.loss.to_bits(), "step {}", r.step);
    }
    assert!(resumed.history[2].metric.is_some());
    // The trained weights (not only the exported best ones) are those of the uninterrupted run.
    let weights = |out: &Path| -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> = Tensor::load_multi(out.join(CHECKPOINT_FILE))
            .unwrap()
            .into_iter()
            .filter(|(name, _)| name.starts_with("weight/"))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    let (expected, actual) = (weights(&whole), weights(&cut_short));
    assert!(!expected.is_empty());
    assert_eq!(expected.len(), actual.len());
    for ((name, e), (_, a)) in expected.iter().zip(&actual) {
        assert!(e.equal(a), "{name}");
    }
    assert_eq!(
        std::fs::read(whole.join(RECOVERED_FILE)).unwrap(),
        std::fs::read(cut_short.join(RECOVERED_FILE)).unwrap()
    );

    // A checkpoint that does not load: `worker recover` (Refuse) names it and leaves it; a job (StartOver)
    // discards it and ends as the uninterrupted run did.
    std::fs::create_dir_all(&garbage).unwrap();
    let bad = garbage.join(CHECKPOINT_FILE);
    let junk = b"PK\x03\x04 not a checkpoint".repeat(40);
    std::fs::write(&bad, &junk).unwrap();
    let refused = format!("{:#}", run(&garbage, None).unwrap_err());
    assert!(
        refused.contains(&bad.display().to_string()) && refused.contains("remove it to start over"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(&bad).unwrap(),
        junk,
        "a refused checkpoint is left as it was"
    );
    let restarted = run_as(&garbage, None, UnloadableCheckpoint::StartOver).unwrap();
    assert_eq!(restarted.resumed_at, 0);
    assert_eq!(restarted.history, uninterrupted.history);
    assert_eq!(
        std::fs::read(whole.join(RECOVERED_FILE)).unwrap(),
        std::fs::read(garbage.join(RECOVERED_FILE)).unwrap()
    );
    assert_eq!(
        weights(&garbage).len(),
        expected.len(),
        "the bad checkpoint was replaced"
    );
}

/// Two Adam steps of the fixture's pruned CNN (Sigmoid head) towards the unpruned one, saved as a checkpoint
/// of `options` at `path`; returns the checkpoint's history.
fn trained_checkpoint(path: &Path, options: &Options) -> Vec<Step> {
    let (original, pruned) = small_cnn_and_pruned();
    let (teacher_graph, student_graph) = (with_head(&original, "Sigmoid"), with_head(&pruned, "Sigmoid"));
    let teacher = Executor::new(&teacher_graph, Device::Cpu).unwrap();
    let student = Executor::new(&student_graph, Device::Cpu).unwrap();
    let mut trainer = Trainer::new(&student, &student_graph).unwrap();
    tch::manual_seed(25);
    let batch = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let history: Vec<Step> = (1..=2)
        .map(|step| Step {
            step,
            loss: trainer
                .step(&teacher, &student, Distillation::ProbabilityMap, &batch, 1e-3)
                .unwrap(),
            metric: (step == 2).then_some(0.25),
        })
        .collect();
    let best = Best {
        step: 2,
        metric: 0.25,
        weights: trainer.snapshot(),
    };
    Checkpoint {
        step: 2,
        best: &best,
        history: &history,
    }
    .save(path, &trainer, options)
    .unwrap();
    history
}

/// The checkpoint at `from` with `edit` applied to its tensors, written to `to`.
fn rewritten(from: &Path, to: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let mut named: HashMap<String, Tensor> = Tensor::load_multi(from).unwrap().into_iter().collect();
    edit(&mut named);
    let named: Vec<(String, Tensor)> = named.into_iter().collect();
    Tensor::save_multi(&named, to).unwrap();
}

#[test]
fn a_checkpoint_that_does_not_load_is_refused_with_its_path_and_problem_and_leaves_the_trainer_as_it_was() {
    let dir = scratch("recover", "hostile_checkpoints");
    let options = Options {
        steps: 3,
        batch_size: 2,
        learning_rate: 1e-3,
        input_size: 32,
        seed: 1,
        checkpoint_every: 1,
        eval_every: 2,
    };
    let good = dir.join("good.ckpt");
    let history = trained_checkpoint(&good, &options);
    let (original, pruned) = small_cnn_and_pruned();
    let (student_graph, unpruned_graph) = (with_head(&pruned, "Sigmoid"), with_head(&original, "Sigmoid"));

    // The checkpoint as written loads: the step, the best weights, and the history bit for bit.
    let student = Executor::new(&student_graph, Device::Cpu).unwrap();
    let mut trainer = Trainer::new(&student, &student_graph).unwrap();
    let resumed = Checkpoint::load(&good, &mut trainer, &options).unwrap().unwrap();
    assert_eq!((resumed.step, resumed.best.step, resumed.best.metric), (2, 2, 0.25));
    assert_eq!(resumed.history, history);
    assert!(
        Checkpoint::load(&dir.join("none.ckpt"), &mut trainer, &options)
            .unwrap()
            .is_none()
    );

    let bytes = std::fs::read(&good).unwrap();
    let write = |name: &str, contents: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    let rewrite = |name: &str, edit: &dyn Fn(&mut HashMap<String, Tensor>)| {
        let path = dir.join(name);
        rewritten(&good, &path, edit);
        path
    };
    let first_weight = trainer.names()[0].clone();
    let other_seed = Options {
        seed: 2,
        ..options.clone()
    };
    let cases: Vec<(&str, std::path::PathBuf, &Options, &Graph)> = vec![
        (
            "not a libtorch archive",
            write("garbage.ckpt", &b"\x00\xffgarbage".repeat(100)),
            &options,
            &student_graph,
        ),
        (
            "not a libtorch archive",
            write("truncated.ckpt", &bytes[..bytes.len() / 2]),
            &options,
            &student_graph,
        ),
        ("another student", good.clone(), &options, &unpruned_graph),
        (
            "this recovery has [3, 2, 2, 32]",
            good.clone(),
            &other_seed,
            &student_graph,
        ),
        (
            "step 7 is outside this recovery's 0 to 3 steps",
            rewrite("beyond.ckpt", &|named| {
                named.insert("step".into(), Tensor::from(7i64));
            }),
            &options,
            &student_graph,
        ),
        (
            "step -1 is outside",
            rewrite("negative.ckpt", &|named| {
                named.insert("step".into(), Tensor::from(-1i64));
            }),
            &options,
            &student_graph,
        ),
        (
            "'step' is Double [], not a single Int64",
            rewrite("float_step.ckpt", &|named| {
                named.insert("step".into(), Tensor::from(2.0f64));
            }),
            &options,
            &student_graph,
        ),
        (
            "best_metric is NaN",
            rewrite("nan_best.ckpt", &|named| {
                named.insert("best_metric".into(), Tensor::from(f64::NAN));
            }),
            &options,
            &student_graph,
        ),
        (
            "holds values that are not finite",
            rewrite("infinite_weight.ckpt", &|named| {
                let weight = format!("weight/{first_weight}");
                let poisoned = named[&weight].full_like(f64::INFINITY);
                named.insert(weight, poisoned);
            }),
            &options,
            &student_graph,
        ),
        (
            "its history does not hold steps 1 to 2",
            rewrite("history.ckpt", &|named| {
                named.insert("history/step".into(), Tensor::from_slice(&[1i64, 1]));
            }),
            &options,
            &student_graph,
        ),
        (
            "no 'adam_m/",
            rewrite("no_moments.ckpt", &|named| {
                named.retain(|name, _| !name.starts_with("adam_m/"));
            }),
            &options,
            &student_graph,
        ),
    ];
    for (problem, path, options, graph) in cases {
        let student = Executor::new(graph, Device::Cpu).unwrap();
        let mut trainer = Trainer::new(&student, graph).unwrap();
        let before = trainer.snapshot();
        let error = format!("{:#}", Checkpoint::load(&path, &mut trainer, options).unwrap_err());
        assert!(
            error.contains(&path.display().to_string()) && error.contains(problem),
            "{}: expected '{problem}' in: {error}",
            path.display()
        );
        for (b, a) in before.iter().zip(trainer.snapshot()) {
            assert!(b.equal(&a), "{}: the trainer changed", path.display());
        }
    }
}

#[test]
fn worker_recover_trains_a_pruned_cls_model_on_its_class_distributions() {
    let dir = scratch("recover", "cls");
    let (eval_set, train_set) = (dir.join("eval"), dir.join("train"));
    synth("cls", &eval_set, 4, 1);
    synth("cls", &train_set, 8, 2);
    let teacher = root().join("models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let original = onnx::read(&teacher).unwrap();
    let analysis = groups::analyse_at(&original, &[vec![1, 3, 48, 192]]).unwrap();
    let largest = analysis.groups.iter().max_by_key(|g| g.params).unwrap();
    let plan: Plan = [(largest.key.clone(), 0.5)].into();
    let cut = Cut::plan(&original, &analysis, &plan, Criterion::default()).unwrap();
    let student = dir.join("pruned.onnx");
    onnx::write(&structural::prune(&original, &analysis, &cut).unwrap().graph, &student).unwrap();
    let out = dir.join("out");
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    let output = worker(&[
        "recover",
        "--teacher",
        &teacher.display().to_string(),
        "--student",
        &student.display().to_string(),
        "-c",
        &root()
            .join("eval/tests/fixtures/configs/cls_mv3.yml")
            .display()
            .to_string(),
        "-o",
        &format!("Eval.dataset.data_dir={}", eval_set.display()),
        &format!(
            "Eval.dataset.label_file_list=[{}]",
            eval_set.join("label.txt").display()
        ),
        "--out",
        &out.display().to_string(),
        "--data-dir",
        &train_set.display().to_string(),
        "--label-file-list",
        &train_set.join("label.txt").display().to_string(),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&out.join("recover_report.json"));
    assert_eq!(report["metric"], "acc");
    let history = report["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    // A KL divergence, down to float rounding.
    assert!(history.iter().all(|h| h["loss"].as_f64().unwrap() > -1e-6), "{report}");
    assert!(
        history[0]["loss"].as_f64().unwrap() > 1e-6,
        "half the largest group pruned: {report}"
    );
    assert!(onnx::read(&out.join(RECOVERED_FILE)).is_ok());
}
