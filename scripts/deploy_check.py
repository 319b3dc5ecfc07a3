"""The deploy checks' Python side, run from .deploy-check (scripts/setup.sh) by coordinator/tests/it/deploy.rs.

  deploy_check.py compose-schema SCHEMA COMPOSE_FILE
      Validates the compose file against the Compose Specification's JSON schema (draft 2019-09); prints each
      violation with its path and exits 1 when there is one.
  deploy_check.py containers FILE...
      Prints, as one JSON list, every container that the compose files (a top-level `services:`) and the
      Kubernetes manifests (pod templates of workloads, and pods) define: where it is, its image, its command
      (compose `command:`; Kubernetes `command:` then `args:`, with whether `command:` replaced the image's
      entrypoint), the Dockerfile compose builds it from, and the names of the environment variables it sets.
"""

import json
import sys

import jsonschema
import yaml


def compose_schema(schema_path, compose_path):
    with open(schema_path) as f:
        schema = json.load(f)
    with open(compose_path) as f:
        document = yaml.safe_load(f)
    # The schema names draft 2019-09 by an address the jsonschema package does not know: say it here.
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    for error in errors:
        path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        print(f"{compose_path}: {path}: {error.message}")
    return 1 if errors else 0


def compose_containers(path, document):
    for name, service in (document.get("services") or {}).items():
        command = service.get("command")
        if isinstance(command, str):
            sys.exit(f"{path}: services/{name}/command: write it as a list, so it is checked word by word")
        environment = service.get("environment") or {}
        names = list(environment) if isinstance(environment, dict) else [e.split("=", 1)[0] for e in environment]
        build = service.get("build")
        yield {
            "where": f"{path}: services/{name}",
            "image": service.get("image"),
            "dockerfile": build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else None,
            "entrypoint": service.get("entrypoint"),
            "command": command,
            "env": names,
        }


def pod_spec(document):
    kind = document.get("kind")
    spec = document.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return (spec.get("template") or {}).get("spec")


def k8s_containers(path, document):
    spec = pod_spec(document) or {}
    resource = f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            yield {
                "where": f"{path}: {resource}: {field}/{container.get('name')}",
                "image": container.get("image"),
                "dockerfile": None,
                "entrypoint": container.get("command"),
                "command": container.get("args"),
                "env": [e["name"] for e in container.get("env") or []],
            }


def containers(paths):
    found = []
    for path in paths:
        with open(path) as f:
            for document in yaml.safe_load_all(f):
                if not document:
                    continue
                if "services" in document and "kind" not in document:
                    found.extend(compose_containers(path, document))
                else:
                    found.extend(k8s_containers(path, document))
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "compose-schema":
        sys.exit(compose_schema(sys.argv[2], sys.argv[3]))
    if len(sys.argv) >= 3 and sys.argv[1] == "containers":
        sys.exit(containers(sys.argv[2:]))
    sys.exit(__doc__)
