"""The stand-in judge's share of OpenAI's Files and Batch APIs, for ``judging.mode: batch``:
``POST /v1/files`` (multipart upload, purpose ``batch``), ``GET /v1/files/<id>/content``,
``POST /v1/batches`` and ``GET /v1/batches/<id>``, with OpenAI's object shapes.

A batch runs every line of its input file through the server's own chat answer (``batch_item``), so batch
verdicts equal the ordinary ones; each answered line is billed (at the batch price) when the batch is created.
``files_endpoint = False`` makes the server one without ``/v1/files`` (a local server): uploads get a 404. It is ``in_progress`` while ``batch_hold`` is set (tests use it to kill a
job mid-batch) and ``completed`` otherwise; answered items go to the output file, failed ones (a model the
server does not serve, or what a subclass's ``batch_item`` says) to the error file.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP


class BatchEndpoints:
    """Mixin for :class:`reproduce.rehearsal.judge_server.JudgeServer`: files and batches in memory."""

    def _batch_init(self) -> None:
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.files_endpoint = True  # False: no /v1/files, as on a server without the Batch API
        self.batch_hold = threading.Event()  # set: batches stay in_progress
        self.batches_created = 0
        self.batch_items = 0
        self._ids = itertools.count(1)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-standin-{next(self._ids)}"

    def _file(self, data: bytes, filename: str, purpose: str) -> dict:
        fid = self._new_id("file")
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                           "filename": filename, "purpose": purpose, "data": data}
        return {k: v for k, v in self.files[fid].items() if k != "data"}

    def on_file_upload(self, handler, raw: bytes, content_type: str) -> None:
        """``POST /v1/files``: a multipart form with ``file`` and ``purpose``."""
        if not self.files_endpoint:
            handler.send_json(404, _error("Unknown request URL: POST /v1/files."))
            return
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields, data, name = {}, None, "upload.jsonl"
        for part in msg.iter_parts() if msg.is_multipart() else ():
            field = part.get_param("name", header="content-disposition")
            if field == "file":
                data, name = part.get_payload(decode=True), part.get_filename() or name
            elif field:
                fields[field] = part.get_payload(decode=True).decode()
        if data is None:
            handler.send_json(400, _error("a multipart form with a 'file' part is required"))
            return
        with self._lock:
            handler.send_json(200, self._file(data, name, fields.get("purpose", "batch")))

    def on_batch_create(self, handler, body: dict) -> None:
        """``POST /v1/batches``: answer every input line now; the batch reports them when not held."""
        source = self.files.get(body.get("input_file_id"))
        if source is None:
            handler.send_json(404, _error(f"No such File object: {body.get('input_file_id')}"))
            return
        out, err = [], []
        for line in source["data"].decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            with self._lock:
                self.batch_items += 1
                n = self.batch_items
            status, response = self.batch_item(item.get("body") or {}, n)
            rid = f"req-standin-{n}"
            if status == 200:
                usage = response.get("usage") if isinstance(response, dict) else None
                self.bill(item.get("body") or {}, usage if isinstance(usage, dict) else None, batch=True)
                out.append({"id": f"batch_req_{n}", "custom_id": item.get("custom_id"), "error": None,
                            "response": {"status_code": 200, "request_id": rid, "body": response}})
            else:
                err.append({"id": f"batch_req_{n}", "custom_id": item.get("custom_id"), "error": None,
                            "response": {"status_code": status, "request_id": rid, "body": response}})
        with self._lock:
            self.batches_created += 1
            bid = self._new_id("batch")
            self.batches[bid] = {
                "id": bid, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
                "input_file_id": source["id"], "completion_window": body.get("completion_window", "24h"),
                "status": "in_progress", "output_file_id": None, "error_file_id": None,
                "created_at": int(time.time()), "request_counts": {"total": len(out) + len(err),
                                                                   "completed": len(out), "failed": len(err)},
                "_out": "".join(json.dumps(r) + "\n" for r in out).encode(),
                "_err": "".join(json.dumps(r) + "\n" for r in err).encode()}
            handler.send_json(200, self._public(self.batches[bid]))

    def batch_item(self, body: dict, n: int) -> tuple[int, dict]:
        """(status, body) of one batch line: the ordinary chat answer, or the 404 of an unknown model."""
        error = self.model_error(body)
        return (404, error) if error is not None else (200, self.completion(body, n))

    def _public(self, batch: dict) -> dict:
        if batch["status"] == "in_progress" and not self.batch_hold.is_set():
            batch["status"] = "completed"
            batch["completed_at"] = int(time.time())
            if batch["_out"]:
                batch["output_file_id"] = self._file(batch["_out"], "batch_output.jsonl", "batch_output")["id"]
            if batch["_err"]:
                batch["error_file_id"] = self._file(batch["_err"], "batch_errors.jsonl", "batch_output")["id"]
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def on_batch_get(self, handler, path: str) -> bool:
        """``GET /v1/batches/<id>`` and ``GET /v1/files/<id>/content``; False when ``path`` is neither."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "batches"] and len(parts) == 3:
            with self._lock:
                batch = self.batches.get(parts[2])
                payload = self._public(batch) if batch else None
            handler.send_json(200, payload) if payload else handler.send_json(404, _error(f"No batch {parts[2]}"))
            return True
        if parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
            f = self.files.get(parts[2])
            handler.send_json(200, f["data"]) if f else handler.send_json(404, _error(f"No such File object: {parts[2]}"))
            return True
        return False


def _error(message: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
