//! Static checks of what runs the binaries elsewhere (no Docker engine or cluster is needed):
//! `docker-compose.yml` against the Compose Specification's schema, `deploy/k8s/` against the Kubernetes
//! schemas (kubernetes-validate, strict), and every command, flag and environment variable that the compose
//! file and the manifests give our images against the real binaries. Each check also runs on a broken copy,
//! which it must refuse.
//!
//! The validators live in the `.deploy-check` venv that `make setup` makes (scripts/setup.sh,
//! setup_deploy_check); `scripts/deploy_check.py` reads the YAML for this file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Our images: the repository part of the image name, the binary that is its entrypoint, and its Dockerfile.
const IMAGES: [(&str, &str, &str); 2] = [
    ("sensgrid/coordinator", "coordinator", "docker/coordinator.Dockerfile"),
    ("sensgrid/worker", "worker", "docker/worker.Dockerfile"),
];
/// Images whose commands are their own business.
const THIRD_PARTY_IMAGES: [&str; 1] = ["postgres"];
/// The Kubernetes version the manifests are checked against (kubernetes-validate ships 1.25 to 1.37).
const KUBERNETES_VERSION: &str = "1.33.0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A program of the `.deploy-check` venv.
fn venv(program: &str) -> PathBuf {
    let path = root().join(".deploy-check/bin").join(program);
    assert!(path.exists(), "{} is missing: run `make setup`", path.display());
    path
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The path of one of our binaries: this test's own coordinator, or the worker beside it.
fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_coordinator")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --workspace --bins` (make setup does)",
        path.display()
    );
    path
}

/// The compose schema check's exit status and output.
fn compose_schema(file: &Path) -> Output {
    run(Command::new(venv("python"))
        .arg(root().join("scripts/deploy_check.py"))
        .arg("compose-schema")
        .arg(root().join(".deploy-check/compose-spec.json"))
        .arg(file))
}

#[test]
fn deploy_compose_file_matches_the_compose_spec_schema() {
    let compose = root().join("docker-compose.yml");
    let output = compose_schema(&compose);
    assert!(output.status.success(), "{}", text(&output));

    // A misspelled key is refused, naming the service.
    let broken = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(&compose).unwrap();
    assert!(source.contains("\n    depends_on:\n"));
    let misspelled = broken.path().join("docker-compose.yml");
    std::fs::write(&misspelled, source.replace("\n    depends_on:\n", "\n    depend_on:\n")).unwrap();
    let output = compose_schema(&misspelled);
    assert!(!output.status.success(), "a misspelled key passed: {}", text(&output));
    assert!(text(&output).contains("services/coordinator"), "{}", text(&output));
}

/// The manifests that `kubectl apply -k deploy/k8s` applies, and the example Secret.
fn k8s_manifests() -> Vec<PathBuf> {
    let dir = root().join("deploy/k8s");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let mut manifests: Vec<PathBuf> = kustomization
        .lines()
        .skip_while(|line| !line.starts_with("resources:"))
        .skip(1)
        .map_while(|line| line.trim().strip_prefix("- "))
        .map(|name| dir.join(name))
        .collect();
    manifests.push(dir.join("secret.example.yaml"));
    // Nothing in the directory escapes the check.
    let mut listed: BTreeSet<PathBuf> = manifests.iter().cloned().collect();
    listed.insert(dir.join("kustomization.yaml"));
    let present: BTreeSet<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(
        present, listed,
        "every file of deploy/k8s is in kustomization.yaml or the example Secret"
    );
    manifests
}

fn kubernetes_validate(files: &[PathBuf]) -> Output {
    run(Command::new(venv("kubernetes-validate"))
        .args(["--kubernetes-version", KUBERNETES_VERSION, "--strict", "--quiet"])
        .args(files))
}

#[test]
fn deploy_k8s_manifests_pass_kubernetes_validate() {
    let manifests = k8s_manifests();
    let output = kubernetes_validate(&manifests);
    // --quiet prints only warnings (an unknown kind, say) and failures: neither is allowed.
    assert!(
        output.status.success() && text(&output).trim().is_empty(),
        "{}",
        text(&output)
    );

    let broken = tempfile::tempdir().unwrap();
    let worker = std::fs::read_to_string(root().join("deploy/k8s/worker.yaml")).unwrap();
    for (from, to) in [
        ("terminationGracePeriodSeconds:", "terminationGracePeriod:"),
        ("replicas: 2", "replicas: two"),
    ] {
        assert!(worker.contains(from), "{from}");
        let file = broken.path().join("worker.yaml");
        std::fs::write(&file, worker.replace(from, to)).unwrap();
        let output = kubernetes_validate(&[file]);
        assert!(!output.status.success(), "{to} passed: {}", text(&output));
    }
}

/// What the help of `binary subcommand` lists: its long and short options and the environment variables it
/// reads. `None` when the binary has no such subcommand.
struct Help {
    options: BTreeSet<String>,
    env: BTreeSet<String>,
}

fn help(binary: &Path, subcommand: &[&str]) -> Option<Help> {
    let output = run(Command::new(binary).args(subcommand).arg("--help"));
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut options = BTreeSet::new();
    for line in stdout.lines() {
        // `  -c, --config <CONFIG>  …` or `      --listen <LISTEN>  …`: the flags come first on the line.
        for word in line.split_whitespace() {
            let word = word.trim_end_matches(',');
            if word.starts_with('-') {
                options.insert(word.split(['=', '[']).next().unwrap().to_owned());
            } else if !word.starts_with('<') {
                break;
            }
        }
    }
    let env = stdout
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect();
    Some(Help { options, env })
}

/// The subcommands a binary lists under `Commands:`.
fn subcommands(binary: &Path) -> Vec<String> {
    let output = run(Command::new(binary).arg("--help"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Checks one command given to `binary`: its subcommand exists, every flag is in that subcommand's help, and
/// clap parses the whole line (values included) when `--help` is appended.
fn check_command(binary: &Path, args: &[String]) -> Result<(), String> {
    let name = binary.file_name().unwrap().to_string_lossy();
    let Some(subcommand) = args.first().filter(|word| !word.starts_with('-')) else {
        return Err(format!("no subcommand for {name}: {args:?}"));
    };
    let help = help(binary, &[subcommand]).ok_or_else(|| format!("{name} has no subcommand '{subcommand}'"))?;
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap();
        if flag.starts_with('-') && !help.options.contains(flag) {
            return Err(format!("`{name} {subcommand}` has no flag {flag}"));
        }
    }
    let output = run(Command::new(binary).args(args).arg("--help"));
    if !output.status.success() {
        return Err(format!("`{name} {}` does not parse: {}", args.join(" "), text(&output)));
    }
    Ok(())
}

/// Every environment variable any subcommand of `binary` reads.
fn env_read_by(binary: &Path) -> BTreeSet<String> {
    subcommands(binary)
        .iter()
        .filter_map(|subcommand| help(binary, &[subcommand]))
        .flat_map(|help| help.env)
        .collect()
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
            .collect()
    })
}

#[test]
fn deploy_commands_flags_and_env_are_accepted_by_the_binaries() {
    let mut files = vec![root().join("docker-compose.yml")];
    files.extend(k8s_manifests());
    let output = run(Command::new(venv("python"))
        .arg(root().join("scripts/deploy_check.py"))
        .arg("containers")
        .args(&files));
    assert!(output.status.success(), "{}", text(&output));
    let containers: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();

    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for container in &containers {
        let place = container["where"].as_str().unwrap();
        let image = container["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{place}: no image"));
        let repository = image.split(':').next().unwrap();
        if THIRD_PARTY_IMAGES.contains(&repository) {
            continue;
        }
        let Some((_, name, dockerfile)) = IMAGES.iter().find(|(repo, ..)| *repo == repository) else {
            problems.push(format!(
                "{place}: image {image} is neither ours nor a known third party's"
            ));
            continue;
        };
        let binary = binary(name);
        if let Some(built_from) = container["dockerfile"].as_str()
            && built_from != *dockerfile
        {
            problems.push(format!("{place}: {image} is built from {built_from}, not {dockerfile}"));
        }
        if let Some(entrypoint) = strings(&container["entrypoint"])
            && entrypoint != [*name]
            && entrypoint != [format!("/usr/local/bin/{name}")]
        {
            problems.push(format!("{place}: entrypoint {entrypoint:?} is not {name}"));
            continue;
        }
        let Some(args) = strings(&container["command"]) else {
            problems.push(format!(
                "{place}: no command for {name} (the image would only print its help)"
            ));
            continue;
        };
        if let Err(problem) = check_command(&binary, &args) {
            problems.push(format!("{place}: {problem}"));
        }
        let read = env_read_by(&binary);
        for variable in strings(&container["env"]).unwrap_or_default() {
            // Variables the manifest itself substitutes into the arguments, like $(POD_NAME).
            let substituted = args.iter().any(|arg| arg.contains(&format!("$({variable})")));
            if !substituted && !read.contains(&variable) {
                problems.push(format!("{place}: {name} reads no environment variable {variable}"));
            }
        }
        checked.insert((*name).to_owned());
        checked.insert(place.split(':').next().unwrap().to_owned());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for expected in [
        "coordinator",
        "worker",
        "/docker-compose.yml",
        "/coordinator.yaml",
        "/worker.yaml",
    ] {
        assert!(
            checked.iter().any(|checked| checked.ends_with(expected)),
            "{expected} was not checked: {checked:?}"
        );
    }

    // The images' entrypoints are the binaries the map above assumes.
    for (_, name, dockerfile) in IMAGES {
        let text = std::fs::read_to_string(root().join(dockerfile)).unwrap();
        assert!(text.contains(&format!("ENTRYPOINT [\"{name}\"]")), "{dockerfile}");
    }

    // Strict enough: a misspelled flag, a bad value, a stray word or an unknown subcommand is refused.
    let coordinator = binary("coordinator");
    let words = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        check_command(&coordinator, &words("serve --listen 0.0.0.0:7070")),
        Ok(())
    );
    for bad in [
        "serve --listne 0.0.0.0:7070",
        "serve --listen not-an-address",
        "serve --listen 0.0.0.0:7070 stray",
        "serf --listen 0.0.0.0:7070",
    ] {
        assert!(check_command(&coordinator, &words(bad)).is_err(), "{bad} passed");
    }
}

/// The YAML documents of `file` as JSON, read by the venv's PyYAML as `scripts/deploy_check.py` reads them.
fn yaml_documents(file: &Path) -> Vec<Value> {
    let output = run(Command::new(venv("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file));
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of `flag` in a command (`--flag VALUE` or `--flag=VALUE`).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(at, arg)| {
        if arg == flag {
            args.get(at + 1).map(String::as_str)
        } else {
            arg.strip_prefix(flag)?.strip_prefix('=')
        }
    })
}

/// What keeps the GPUs from each getting a worker of its own: on one box, compose must give the worker service
/// every GPU and run `join --device all` there (a worker per GPU in the container; with `count: 1` every
/// replica got the first GPU); on Kubernetes, a worker pod asks for one GPU and runs one worker on it.
fn gpu_layout_problems(compose: &Value, k8s_worker: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let service = &compose["services"]["worker"];
    let command = strings(&service["command"]).unwrap_or_default();
    if flag_value(&command, "--device") != Some("all") {
        problems.push(format!("compose: the worker runs {command:?}, not join --device all"));
    }
    let reserved = &service["deploy"]["resources"]["reservations"]["devices"];
    let every_gpu = serde_json::json!([{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]);
    if *reserved != every_gpu {
        problems.push(format!(
            "compose: the worker reserves {reserved}, not every GPU: {every_gpu}"
        ));
    }
    let container = &k8s_worker["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&container["args"]).unwrap_or_default();
    if !matches!(flag_value(&args, "--device"), Some("auto" | "cuda" | "cuda:0")) {
        problems.push(format!("k8s: the worker runs {args:?}, not one worker on its GPU"));
    }
    let gpus = &container["resources"]["limits"]["nvidia.com/gpu"];
    if *gpus != 1 {
        problems.push(format!("k8s: a worker pod asks for {gpus} GPUs, not 1"));
    }
    problems
}

#[test]
fn deploy_compose_runs_a_worker_per_gpu_of_the_box_and_k8s_one_per_pod() {
    let compose = yaml_documents(&root().join("docker-compose.yml")).remove(0);
    let k8s_worker = yaml_documents(&root().join("deploy/k8s/worker.yaml")).remove(0);
    assert_eq!(gpu_layout_problems(&compose, &k8s_worker), Vec::<String>::new());

    // The layout this replaced, and its mirror image on Kubernetes, are refused.
    let mut one_gpu = compose.clone();
    let service = &mut one_gpu["services"]["worker"];
    service["deploy"]["resources"]["reservations"]["devices"][0]["count"] = 1.into();
    let device = service["command"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|arg| *arg == "all")
        .unwrap();
    *device = "auto".into();
    let problems = gpu_layout_problems(&one_gpu, &k8s_worker);
    assert_eq!(problems.len(), 2, "{problems:?}");
    let mut every_gpu_pod = k8s_worker.clone();
    let container = &mut every_gpu_pod["spec"]["template"]["spec"]["containers"][0];
    container["resources"]["limits"]["nvidia.com/gpu"] = 4.into();
    let args = container["args"].as_array_mut().unwrap();
    let device = args.iter().position(|arg| arg == "--device").unwrap() + 1;
    args[device] = "all".into();
    let problems = gpu_layout_problems(&compose, &every_gpu_pod);
    assert_eq!(problems.len(), 2, "{problems:?}");
}
