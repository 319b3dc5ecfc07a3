//! The built binary starts on its own, and `submit` refuses what could only fail before it connects.

use std::path::{Path, PathBuf};
use std::process::Command;

use sensgrid_coordinator::submit::prepare;
use sensgrid_model::ir::Attr;
use sensgrid_model::{onnx, ops};

#[test]
fn help_starts_without_ld_library_path() {
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("--help")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("running coordinator --help");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Usage: coordinator"), "{stdout}");
    assert!(stdout.contains("migrate"), "{stdout}");
}

/// `coordinator serve` on this test's database, with the given extra flags.
pub(crate) fn serve_command(connect: &sqlx::postgres::PgConnectOptions, artifact_dir: &std::path::Path) -> Command {
    let database = connect.get_database().expect("the test database has a name");
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let (server, _) = base.rsplit_once('/').expect("DATABASE_URL ends in /<database>");
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--worker-token",
            "w",
            "--admin-token",
            "a",
        ])
        .args([
            "--heartbeat",
            "250ms",
            "--lease",
            "2s",
            "--sweep",
            "100ms",
            "--max-attempts",
            "2",
        ])
        .arg("--artifact-dir")
        .arg(artifact_dir)
        .env("DATABASE_URL", format!("{server}/{database}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// Reads a started `coordinator serve`'s first stdout line, `listening on ADDR` (printed once it is bound and
/// migrated), and answers ADDR.
pub(crate) async fn listening_addr(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .expect("reading the first line");
    line.trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("expected 'listening on ADDR' on stdout, got {line:?}"))
        .to_owned()
}

/// Sends SIGTERM to `child` and waits for it, answering what it wrote.
pub(crate) async fn terminate(child: std::process::Child) -> std::process::Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn serve_prints_the_bound_address_serves_and_stops_on_sigterm(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let artifact_dir = tempfile::tempdir().unwrap();
    let mut child = serve_command(&connect, artifact_dir.path())
        .spawn()
        .expect("starting coordinator serve");
    let addr = listening_addr(&mut child).await;
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");

    let channel = sensgrid_client::connect(&format!("http://{addr}"), None).await.unwrap();
    let mut worker = sensgrid_client::worker_client(channel, "w").unwrap();
    let request = sensgrid_proto::v1::RegisterRequest {
        name: "cli".into(),
        device: "cpu".into(),
    };
    let registered = worker.register(request).await.unwrap().into_inner();
    assert_eq!(registered.heartbeat_interval_ms, 250, "--heartbeat reaches the workers");

    let output = terminate(child).await;
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn serve_refuses_a_heartbeat_not_shorter_than_the_lease() {
    let artifact_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args([
            "serve",
            "--worker-token",
            "w",
            "--admin-token",
            "a",
            "--heartbeat",
            "20s",
        ])
        .arg("--artifact-dir")
        .arg(artifact_dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--heartbeat: expected less than --lease (20s), got 20s"),
        "{stderr}"
    );
}

/// A file under the repository root.
fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// What `submit` answers before it connects anywhere: `prepare` of an example config with `overrides` and the
/// model and dictionary paths made absolute. The eval sets of the examples are not there, so a refusal that
/// comes before the eval set is packed is the only one these can give.
fn prepare_refusal(example: &str, model: &str, overrides: &[&str]) -> String {
    let model = if Path::new(model).is_absolute() {
        PathBuf::from(model)
    } else {
        repo_path(model)
    };
    let mut all = vec![
        format!("Global.pretrained_model={}", model.display()),
        format!(
            "Global.character_dict_path={}",
            repo_path("models/ppocr_keys_v1.txt").display()
        ),
    ];
    all.extend(overrides.iter().map(|o| (*o).to_owned()));
    let config = repo_path(&format!("examples/configs/{example}"));
    match prepare(&config, &all, None) {
        Ok(_) => panic!("{example} with {all:?} was accepted"),
        Err(error) => format!("{error:#}"),
    }
}

#[test]
fn submit_refuses_attributes_the_executor_does_not_run_as_worker_inspect_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut graph = onnx::read(&repo_path("models/ch_PP-OCRv3_det_infer.onnx")).unwrap();
    let conv = graph.nodes.iter_mut().find(|n| n.op_type == "Conv").unwrap();
    conv.attributes.push(("fancy".into(), Attr::Int(1)));
    let conv = conv.name.clone();
    let resize = graph.nodes.iter_mut().find(|n| n.op_type == "Resize").unwrap();
    resize.attributes.retain(|(name, _)| name != "mode");
    resize.attributes.push(("mode".into(), Attr::String("cubic".into())));
    let resize = resize.name.clone();
    let path = dir.path().join("det.onnx");
    onnx::write(&graph, &path).unwrap();

    let refusal = prepare_refusal("det_ppocrv3.yml", path.to_str().unwrap(), &[]);
    // `worker inspect` builds the executor, which refuses through the same check.
    let executor_refusal = ops::check_supported(&graph).unwrap_err().to_string();
    assert_eq!(refusal, format!("{}: {executor_refusal}", path.display()));
    for named in [
        format!(
            "node '{conv}' (Conv), attribute 'fancy': is not supported \
             (supported: auto_pad, dilations, group, kernel_shape, pads, strides)"
        ),
        format!("node '{resize}' (Resize), attribute 'mode': cubic is not supported (nearest and linear are)"),
    ] {
        assert!(refusal.contains(&named), "{named} not in {refusal}");
    }
}

#[test]
fn submit_refuses_a_post_process_the_model_output_does_not_fit() {
    let det_config = repo_path("examples/configs/det_ppocrv3.yml");
    let name_line = 1 + std::fs::read_to_string(&det_config)
        .unwrap()
        .lines()
        .position(|line| line == "  name: DBPostProcess")
        .unwrap();
    let cases = [
        // A det config on the cls model: [1, 2] is no probability map.
        (
            "det_ppocrv3.yml",
            "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            vec![],
            format!(
                "{}:{name_line}: PostProcess.name DBPostProcess reads a model output of [N, 1, H, W] (a text probability map), \
                 but output 'save_infer_model/scale_0.tmp_1' of {} is [1, 2] at input [1, 3, 640, 640]",
                det_config.display(),
                repo_path("models/ch_ppocr_mobile_v2.0_cls_infer.onnx").display()
            ),
        ),
        // A rec config whose dictionary lacks the space the model was trained with: 6624 classes, not 6625.
        (
            "rec_ppocrv2.yml",
            "models/ch_PP-OCRv2_rec_infer.onnx",
            vec!["Global.use_space_char=false"],
            "PostProcess.name CTCLabelDecode reads a model output of [N, T, 6624]".to_owned(),
        ),
        // A rec config on the det model.
        (
            "rec_ppocrv2.yml",
            "models/ch_PP-OCRv3_det_infer.onnx",
            vec![],
            "is [1, 1, 32, 320] at input [1, 3, 32, 320]".to_owned(),
        ),
    ];
    for (example, model, overrides, expected) in cases {
        let refusal = prepare_refusal(example, model, &overrides);
        assert!(refusal.contains(&expected), "{example} on {model}: {refusal}");
    }
}

#[test]
fn submit_refuses_a_skip_list_that_leaves_no_group() {
    let refusal = prepare_refusal(
        "rec_ppocrv2.yml",
        "models/ch_PP-OCRv2_rec_infer.onnx",
        &["Sensitivity.skip=['*']"],
    );
    assert!(
        refusal.starts_with("-o Sensitivity.skip=['*']: Sensitivity.skip: skips all ")
            && refusal.ends_with(&format!(
                " channel groups of {}, which leaves no cell to measure",
                repo_path("models/ch_PP-OCRv2_rec_infer.onnx").display()
            )),
        "{refusal}"
    );
}

/// `coordinator ARGS` against the coordinator at `addr` with the admin token of [`serve_command`], its stdout
/// into `stdout`.
pub(crate) fn client_command(addr: &str, args: &[&str], stdout: std::process::Stdio) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(args)
        .env("SENSGRID_COORDINATOR", format!("http://{addr}"))
        .env("SENSGRID_ADMIN_TOKEN", "a")
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .output()
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn watch_exits_2_for_an_unknown_run_and_1_for_a_cancelled_one_and_status_into_a_closed_pipe_exits_0(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    use sensgrid_client as client;
    use sensgrid_proto::v1 as pb;

    let artifact_dir = tempfile::tempdir().unwrap();
    let mut child = serve_command(&connect, artifact_dir.path())
        .spawn()
        .expect("starting coordinator serve");
    let addr = listening_addr(&mut child).await;
    let channel = client::connect(&format!("http://{addr}"), None).await.unwrap();
    let mut admin = client::admin_client(channel, "a").unwrap();
    let model = client::upload_artifact(&mut admin, b"a model", "application/onnx")
        .await
        .unwrap();
    let dataset = client::upload_artifact(&mut admin, b"a dataset", "application/x-tar")
        .await
        .unwrap();
    let run_id = admin
        .create_run(pb::CreateRunRequest {
            config_yaml: "Global: {}\n".into(),
            model_digest: model,
            dataset_digest: dataset,
            criterion: "l1_norm".into(),
            cells: Vec::new(),
            spec_json: r#"{"name": "exit codes", "metric": "hmean"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run_id;
    admin.cancel_run(pb::CancelRunRequest { run_id }).await.unwrap();

    let watch = |run: String| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || client_command(&addr, &["watch", &run], std::process::Stdio::null()))
    };
    let cancelled = watch(run_id.to_string()).await.unwrap();
    let stderr = String::from_utf8_lossy(&cancelled.stderr);
    assert_eq!(cancelled.status.code(), Some(1), "a cancelled run: {stderr}");
    assert!(stderr.contains(&format!("run {run_id} cancelled")), "{stderr}");

    let unknown = watch((run_id + 1000).to_string()).await.unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(
        unknown.status.code(),
        Some(2),
        "an unknown run is refused input: {stderr}"
    );
    assert!(
        stderr.contains(&format!("run {} does not exist", run_id + 1000)),
        "{stderr}"
    );

    // `status | head -1` once head has gone: the reader of the pipe is closed before the command writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let addr_for_status = addr.clone();
    let status = tokio::task::spawn_blocking(move || client_command(&addr_for_status, &["status"], writer.into()))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "exit {:?}: {stderr}", status.status);
    assert!(!stderr.contains("panicked"), "{stderr}");

    let output = terminate(child).await;
    assert!(output.status.success(), "exit {:?}", output.status);
}

#[test]
fn serve_refuses_one_token_for_both_services() {
    let artifact_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--worker-token", "t0ken", "--admin-token", "t0ken"])
        .arg("--artifact-dir")
        .arg(artifact_dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--admin-token: expected a token other than --worker-token"),
        "{stderr}"
    );
}

#[sqlx::test(migrations = false)]
async fn serve_refuses_an_artifact_dir_that_is_a_file_before_it_announces_anything(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let output = serve_command(&connect, &file).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--artifact-dir {}", file.display())),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no `listening on` from a coordinator that will not serve: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn run_refuses_a_bad_config_key_before_it_starts_a_coordinator_or_workers() {
    let out = tempfile::tempdir().unwrap();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs/det_ppocrv3.yml");
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("run")
        .arg("-c")
        .arg(&config)
        .args([
            "-o",
            "Sensitivity.bogus=1",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("coordinator: -o Sensitivity.bogus=1: unknown key") && stderr.lines().count() == 1,
        "one line naming the override, and nothing started before it: {stderr}"
    );
    let logs: Vec<_> = std::fs::read_dir(out.path().join("logs"))
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(logs.is_empty(), "no worker was started: {logs:?}");
}

#[test]
fn plan_refuses_targets_outside_their_range_before_connecting() {
    for (flag, value, why) in [
        ("--max-loss", "-1", "expected a share in (0, 1), got -1"),
        ("--max-loss", "0", "expected a share in (0, 1), got 0"),
        ("--max-loss", "5", "expected a share in (0, 1), got 5"),
        ("--max-loss", "inf", "expected a share in (0, 1), got inf"),
        ("--max-loss", "high", "expected a number, got 'high'"),
        ("--flops-reduction", "NaN", "expected a share in (0, 1), got NaN"),
        ("--flops-reduction", "1", "expected a share in (0, 1), got 1"),
        ("--max-model-loss", "-0.5", "expected a share in (0, 1), got -0.5"),
        ("--latency-reduction", "inf", "expected a share in (0, 1), got inf"),
        ("--tolerance", "1", "expected a number in [0, 1), got 1"),
        ("--tolerance", "-1", "expected a number in [0, 1), got -1"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["plan", "1", &format!("{flag}={value}"), "--token", "t"])
            // Nothing listens there: a refusal that came from a connection would say so.
            .args(["--coordinator", "http://127.0.0.1:1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}={value}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{value}' for '{flag} <")) && stderr.contains(why),
            "{flag}={value}: {stderr}"
        );
    }
}

/// A cls config in `dir`: the v2.0 cls model at one ratio, a `Prune.max_loss` plan that is exported, and an eval
/// set of one 8x8 image, `a.png`, whose label file holds `labels`. Answers the config's path.
pub(crate) fn cls_config(dir: &Path, labels: &str) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let image = std::fs::File::create(data.join("a.png")).unwrap();
    let mut encoder = png::Encoder::new(image, 8, 8);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[128; 8 * 8 * 3]).unwrap();
    writer.finish().unwrap();
    std::fs::write(data.join("label.txt"), labels).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let config = dir.join("cls.yml");
    std::fs::write(
        &config,
        format!(
            "Global:
  pretrained_model: {}
  label_list: ['0', '180']
PostProcess:
  name: ClsPostProcess
Metric:
  name: ClsMetric
  main_indicator: acc
Eval:
  dataset:
    name: SimpleDataSet
    data_dir: {data}
    label_file_list: [{data}/label.txt]
    transforms:
      - DecodeImage:
          img_mode: BGR
          channel_first: False
      - ClsLabelEncode:
      - ClsResizeImg:
          image_shape: [3, 48, 192]
      - KeepKeys:
          keep_keys: ['image', 'label']
Sensitivity:
  ratios: [0.5]
  metric: acc
Prune:
  max_loss: 0.5
  export: true
",
            model.display(),
            data = data.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn submit_refuses_an_empty_label_file_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = cls_config(dir.path(), "");
    let refusal = match prepare(&config, &[] as &[String], None) {
        Ok(_) => panic!("an empty label file was accepted"),
        Err(error) => format!("{error:#}"),
    };
    let labels = dir.path().join("data/label.txt");
    assert!(
        refusal.contains(&labels.display().to_string())
            && refusal.contains("empty label file (an eval set needs at least one line)"),
        "{refusal}"
    );
}
