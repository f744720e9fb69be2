"""Start a real headless ComfyUI (CPU) with this pack whitelisted, for the integration tier."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from comfy_env import comfyui

REPO = Path(__file__).resolve().parents[2]
PACK_DIR = "comfyui-dit-quant"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """``with ComfyServer(root) as srv: srv.get(...)``; ``root`` holds models/, out/, custom_nodes/."""

    extra_folders: tuple[str, ...] = ()  # more model folders under root/models (e.g. "vae", "text_encoders")

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ComfyServer:
        path, python = comfyui()
        (self.root / "custom_nodes").mkdir(parents=True, exist_ok=True)
        link = self.root / "custom_nodes" / PACK_DIR
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        for sub in ("models/diffusion_models", "models/loras", "out", "tmp", "user",
                    *(f"models/{f}" for f in self.extra_folders)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        cfg = self.root / "extra_paths.yaml"
        cfg.write_text(f"dq:\n  base_path: {self.root}\n  diffusion_models: models/diffusion_models\n"
                       "  loras: models/loras\n  custom_nodes: custom_nodes\n"
                       + "".join(f"  {f}: models/{f}\n" for f in self.extra_folders))
        self.log = open(self.root / "server.log", "w")  # closed in __exit__
        self.proc = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch",
             "--extra-model-paths-config", str(cfg), "--output-directory", str(self.root / "out"),
             "--temp-directory", str(self.root / "tmp"), "--user-directory", str(self.root / "user"),
             "--database-url", "sqlite:///:memory:", "--disable-all-custom-nodes", "--whitelist-custom-nodes",
             PACK_DIR, "--log-stdout"], cwd=path, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited ({self.proc.returncode}):\n{self.server_log()}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not start:\n{self.server_log()}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def server_log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-6000:]

    def get(self, route: str) -> dict:
        with urllib.request.urlopen(self.url + route, timeout=30) as r:
            return json.loads(r.read())

    def post_prompt(self, prompt: dict) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def run(self, prompt: dict, timeout: float = 300) -> dict:
        """Queue ``prompt`` and wait for its history entry."""
        status, body = self.post_prompt(prompt)
        assert status == 200, body
        pid = body["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{pid}")
            if pid in hist and hist[pid]["status"].get("completed") is not None and (
                    hist[pid]["status"]["completed"] or hist[pid]["status"]["status_str"] == "error"):
                return hist[pid]
            time.sleep(0.5)
        raise TimeoutError(f"prompt {pid} did not finish:\n{self.server_log()}")


def env_ok() -> bool:
    return bool(os.environ.get("COMFYUI_PATH") and os.environ.get("COMFYUI_PYTHON"))
