"""``environment.json`` records what each start of training ran on."""

import json

import torch

from medmtl.training.environment import ENVIRONMENT_FILE, KERNEL_VARIABLES, record_environment


def test_each_start_appends_the_machine_and_package_versions(tmp_path, monkeypatch):
    for name in KERNEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    record_environment(tmp_path, "cpu (1 threads)", None)
    record_environment(tmp_path, "cpu (2 threads)", "last.ckpt")
    first, second = json.loads((tmp_path / ENVIRONMENT_FILE).read_text())
    assert (first["device"], first["resumed_from"]) == ("cpu (1 threads)", None)
    assert (second["device"], second["resumed_from"]) == ("cpu (2 threads)", "last.ckpt")
    assert first["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert first["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and first["cpu"]
    assert all(flag.startswith(("avx", "amx", "fma")) for flag in first["cpu_vector_flags"])
    assert first["variables"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_an_unreadable_record_is_replaced_not_fatal(tmp_path):
    (tmp_path / ENVIRONMENT_FILE).write_text("{not json")
    record_environment(tmp_path, "cpu (1 threads)", None)
    assert len(json.loads((tmp_path / ENVIRONMENT_FILE).read_text())) == 1
