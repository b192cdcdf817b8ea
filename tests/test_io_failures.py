"""I/O failures of the file writers (`smoe quantize`, `smoe synth`; both go
through gguf_w_write) and of reading a model file that is cut short.

The rule checked: the destination is never left partial or corrupt.  It
either keeps its old content (or stays absent), or holds the complete new
file; no temporary file is left behind, except after SIGKILL (documented
in src/format/gguf.h).

Unwritable places: the tests run as root, for whom chmod does not make a
directory unwritable, so they use paths that no user can create: a name
under a regular file (ENOTDIR) and a name in /proc.  A full disk is
/dev/full (written in place: it is not a regular file, so there is nothing
to replace) and, for a regular destination, RLIMIT_FSIZE set low in the
child (writes past the limit fail with EFBIG; SIGXFSZ is ignored), which
fails the write midway exactly as ENOSPC would.
"""
import glob
import os
import resource
import signal
import stat
import subprocess
import unittest

from smoe_testlib import SMOE, Workdir, smoe, synth


def run(*args, preexec=None):
    return subprocess.run([SMOE, *map(str, args)], capture_output=True, text=True, timeout=300, preexec_fn=preexec)


def limit_file_size(nbytes):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


class WriterFailures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.model = synth(cls.w.file("m.gguf"), "--dim", "64", "--ffn", "128", "--layers", "2")
        cls.size = os.path.getsize(cls.model)

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def assertCleanFailure(self, p, *words):
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertLess(p.returncode, 128, f"killed by a signal: {p.stderr}")
        self.assertNotIn("Sanitizer", p.stderr)
        self.assertTrue(any(w in p.stderr for w in words), p.stderr)

    def no_temp_files(self, dest):
        self.assertEqual(glob.glob(glob.escape(dest) + ".tmp*"), [])

    def old_file(self, name):
        path = self.w.file(name)
        with open(path, "wb") as f:
            f.write(b"old content, not a model\n")
        return path

    def assertOld(self, path):
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"old content, not a model\n")

    def test_dev_full(self):
        before = os.stat("/dev/full")
        for args in (("quantize", self.model, "/dev/full", "q8_0"), ("synth", "-o", "/dev/full")):
            p = run(*args)
            self.assertCleanFailure(p, "No space left")
        # the device is still the device (not replaced by a renamed file)
        after = os.stat("/dev/full")
        self.assertTrue(stat.S_ISCHR(after.st_mode))
        self.assertEqual(after.st_rdev, before.st_rdev)
        self.assertEqual(glob.glob("/dev/full.tmp*"), [])

    def test_dev_null_is_written_in_place(self):
        p = run("quantize", self.model, "/dev/null", "q8_0")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))

    def test_unwritable_directories(self):
        # a name under a regular file, and a name in /proc: root cannot create either
        for dest in (os.path.join(self.model, "out.gguf"), "/proc/smoe-test-out.gguf"):
            for args in (("quantize", self.model, dest, "q8_0"), ("synth", "-o", dest)):
                p = run(*args)
                self.assertCleanFailure(p, "cannot create", "Not a directory", "No such file", "Permission denied")
                self.assertFalse(os.path.exists(dest))

    def test_destination_is_a_directory(self):
        d = self.w.file("adir")
        os.makedirs(d, exist_ok=True)
        p = run("quantize", self.model, d, "q8_0")
        self.assertCleanFailure(p, "rename", "directory")
        self.assertTrue(os.path.isdir(d))
        self.assertEqual(os.listdir(d), [])
        self.no_temp_files(d)

    def test_disk_full_midway_keeps_the_old_file(self):
        # every output here is larger than the limit: the write fails partway
        limit = 4096
        for name, args in (("q.gguf", ("quantize", self.model, None, "q8_0")),
                           ("s.gguf", ("synth", "--dim", "64", "--ffn", "128", "--layers", "2", "-o", None))):
            dest = self.old_file(name)
            p = run(*[dest if a is None else a for a in args], preexec=limit_file_size(limit))
            self.assertCleanFailure(p, "write failed", "File too large")
            self.assertOld(dest)
            self.no_temp_files(dest)
            # and with no old file, nothing appears
            os.unlink(dest)
            p = run(*[dest if a is None else a for a in args], preexec=limit_file_size(limit))
            self.assertCleanFailure(p, "write failed", "File too large")
            self.assertFalse(os.path.exists(dest))
            self.no_temp_files(dest)

    def test_sigkill_midway(self):
        """Kill the writer as soon as its temporary file exists: the
        destination keeps its old content, or (if the writer won the race
        and finished) is the complete new file."""
        big = synth(self.w.file("big.gguf"), "--dim", "256", "--ffn", "1024", "--layers", "6")
        expected = self.w.file("expected.gguf")
        smoe("quantize", big, expected, "q8_0")
        with open(expected, "rb") as f:
            want = f.read()
        dest = self.old_file("killed.gguf")
        proc = subprocess.Popen([SMOE, "quantize", big, dest, "q8_0"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            # wait (bounded by the writer's own lifetime) for the temporary file
            while proc.poll() is None and not glob.glob(glob.escape(dest) + ".tmp*"):
                os.sched_yield()
            proc.kill()
        finally:
            proc.wait(timeout=60)
        with open(dest, "rb") as f:
            got = f.read()
        if proc.returncode == -signal.SIGKILL:
            self.assertEqual(got, b"old content, not a model\n")
            # the documented leftover: at most one temporary file, never the destination
            for t in glob.glob(glob.escape(dest) + ".tmp*"):
                os.unlink(t)
        else:
            self.assertEqual(proc.returncode, 0)
            self.assertEqual(got, want)
        self.no_temp_files(dest)


class TruncatedModel(unittest.TestCase):
    """A model file cut short before it is opened: a clear error, never a
    crash.  (Cut short while mapped, after the checks at load time, is not
    detectable cheaply: the next access to a page past the new end raises
    SIGBUS.  See README.md, "Reliability".)"""

    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.model = synth(cls.w.file("m.gguf"), "--dim", "64", "--ffn", "128", "--layers", "2")

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def test_truncated(self):
        with open(self.model, "rb") as f:
            data = f.read()
        cut = self.w.file("cut.gguf")
        for frac in (0.999, 0.5, 0.01):
            with open(cut, "wb") as f:
                f.write(data[:int(len(data) * frac)])
            for args in (("info", "-m", cut), ("run", "-m", cut, "-p", "hi", "-n", "2")):
                p = run(*args)
                self.assertNotEqual(p.returncode, 0)
                self.assertLess(p.returncode, 128, p.stderr)
                self.assertNotIn("Sanitizer", p.stderr)
                self.assertRegex(p.stderr, r"(?i)truncat|past the end|too short|size|end of file", p.stderr)


if __name__ == "__main__":
    unittest.main()
