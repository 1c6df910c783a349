#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The `pvabi` CLI, run as a user runs it.

`meson install --destdir` into a private directory, then the INSTALLED
pvabi with LD_LIBRARY_PATH and PVABI_HV pointing into it.  Each daemon test
class starts its own pvabi-hv with `pvabi hv start --socket <tmp>/hv.sock`
and stops it with `pvabi hv stop`.  Domains to look at are cli_helper
processes, driven line by line through a pipe (no sleeps: every wait is on
a reply, a process exit or the CLI's own --timeout).

usage: test_cli.py BUILD_DIR PREFIX BINDIR LIBDIR LIBEXECDIR CLI_HELPER
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tempfile
import unittest

TIMEOUT = 60  # s: a hung command fails its test instead of holding meson
SKIP = 77

PVABI = HELPER = TMP = None
ENV = {}


def install():
    """Installs the build into TMP/root; sets PVABI, HELPER and ENV."""
    global PVABI, HELPER, TMP
    build, prefix, bindir, libdir, libexecdir, HELPER = sys.argv[1:7]
    meson = shutil.which('meson')
    if not meson:
        print('SKIP: meson is not in PATH (needed for meson install --destdir)')
        sys.exit(SKIP)
    TMP = tempfile.mkdtemp(prefix='pvabi-cli-')
    root = os.path.join(TMP, 'root')
    subprocess.run([meson, 'install', '-C', build, '--no-rebuild', '--quiet',
                    '--destdir', root], check=True, stdout=subprocess.DEVNULL)

    def under(d):
        return root + (d if os.path.isabs(d) else os.path.join(prefix, d))

    PVABI = os.path.join(under(bindir), 'pvabi')
    xdg = os.path.join(TMP, 'xdg')
    os.mkdir(xdg, 0o700)
    ENV.update({k: v for k, v in os.environ.items()
                if not k.startswith('PVABI_') and k != 'XENSTORED_PATH'})
    ENV.update({
        'LD_LIBRARY_PATH': under(libdir),
        'PVABI_HV': os.path.join(under(libexecdir), 'pvabi-hv'),
        'PVABI_LOCAL_AUTOSTART': '0',  # a test never starts a daemon by accident
        'XDG_RUNTIME_DIR': xdg,
    })


def run(args, expect=0, env=None, input=None):
    """Runs the installed pvabi; checks its exit status."""
    args = [a if isinstance(a, bytes) else str(a) for a in args]
    r = subprocess.run([PVABI] + args, capture_output=True,
                       env=env or ENV, timeout=TIMEOUT, input=input)
    out = r.stdout.decode('utf-8', 'replace')
    err = r.stderr.decode('utf-8', 'replace')
    if r.returncode != expect:
        raise AssertionError(f'pvabi {args}: exit {r.returncode}, expected {expect}\n'
                             f'stdout: {out}\nstderr: {err}')
    r.out, r.err = out, err
    return r


def rows(text):
    """A table's lines as lists of cells (every cell is one word)."""
    return [line.split() for line in text.splitlines()]


def check_aligned(test, text, right):
    """Every column starts (left-aligned) or ends (right-aligned) at the
    same place on every line, the header's included."""
    spans = [[m.span() for m in re.finditer(r'\S+', line)] for line in text.splitlines()]
    test.assertTrue(all(len(s) == len(right) for s in spans), text)
    for c, is_right in enumerate(right):
        edges = {s[c][1] if is_right else s[c][0] for s in spans}
        test.assertEqual(len(edges), 1, f'column {c} not aligned:\n{text}')


class Helper:
    """A cli_helper process: one domain."""

    def __init__(self, test, platform):
        self.proc = subprocess.Popen([HELPER, platform], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=ENV, text=True)
        test.addCleanup(self.stop)
        self.domid = int(self.reply_of(None, 'domid'))

    def reply_of(self, line, word):
        if line is not None:
            self.proc.stdin.write(line + '\n')
            self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        if not reply or reply[0] != word:
            raise AssertionError(f'cli_helper: {line!r} answered {reply!r}')
        return ' '.join(reply[1:])

    def ask(self, line):
        """share -> its refs; alloc, bind -> [port]."""
        word = 'refs' if line.startswith('share') else 'port'
        return [int(w) for w in self.reply_of(line, word).split()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=TIMEOUT)
        self.proc.stdout.close()


class DaemonCase(unittest.TestCase):
    """A private pvabi-hv for the class, through `pvabi hv start/stop`."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(dir=TMP)
        cls.sock = os.path.join(cls.dir, 'hv.sock')
        r = run(['hv', 'start', '--socket', cls.sock])
        assert r.out == cls.sock + '\n', r.out
        cls.platform = 'local:' + cls.sock

    @classmethod
    def tearDownClass(cls):
        r = run(['hv', 'stop', '--socket', cls.sock])
        assert r.out.startswith('stopped: pid '), r.out
        run(['hv', 'status', '--socket', cls.sock], expect=1)

    def cli(self, *args, expect=0, **kw):
        return run(['--platform', self.platform] + list(args), expect=expect, **kw)

    def json(self, *args, expect=0):
        return json.loads(self.cli('--json', *args, expect=expect).out)

    def helper(self):
        return Helper(self, self.platform)


# ---- without a daemon ---------------------------------------------------------

class TestUsage(unittest.TestCase):
    HELPS = [['--help'], ['help'], ['help', 'list'], ['help', 'store', 'watch'],
             ['help', 'hv', 'start'], ['info', '--help'], ['list', '--help'],
             ['channels', '--help'], ['grants', '--help'], ['store', '--help'],
             ['hv', '--help'], ['hv', 'start', '--help'], ['hv', 'stop', '--help'],
             ['hv', 'status', '--help'], ['device', '--help'], ['help', 'device', 'add'],
             ['block-attach', '--help'], ['block-detach', '--help']] + \
        [['store', s, '--help'] for s in ('ls', 'read', 'write', 'rm', 'watch')] + \
        [['device', s, '--help'] for s in ('add', 'rm', 'ls')]

    def test_help_everywhere(self):
        for args in self.HELPS:
            with self.subTest(args=args):
                r = run(args)
                self.assertTrue(r.out.startswith('usage: pvabi'), r.out)
                self.assertEqual(r.err, '')

    def test_version(self):
        self.assertRegex(run(['--version']).out, r'^pvabi \d+\.\d+\.\d+\n$')

    def test_usage_errors(self):
        for args in [[], ['bogus'], ['--bogus'], ['--platform'], ['list', 'x'],
                     ['list', '32752'], ['list', '-1'], ['list', '--bogus'], ['info', 'extra'],
                     ['store'], ['store', 'frob'], ['store', 'read'], ['store', 'ls', '/a', '/b'],
                     ['store', 'write', '/a'], ['store', 'write', '/a', 'v', '/b'],
                     ['store', 'watch', '/a', '--count', '0'], ['store', 'watch', '--count'],
                     ['store', 'watch', '--timeout', 'soon', '/a'], ['hv'],
                     ['hv', 'start', '--daemon'], ['hv', 'stop', 'extra'], ['help', 'bogus'],
                     ['channels', '99999'], ['grants', 'x'], ['device'], ['device', 'frob'],
                     ['device', 'add', 'vbd', '1'], ['device', 'add', 'v/bd', '1', '2'],
                     ['device', 'add', 'vbd', 'x', '2'], ['device', 'add', 'vbd', '1', '-2'],
                     ['device', 'add', 'vbd', '1', '2', '--back', 'novalue'],
                     ['device', 'add', 'vbd', '1', '2', '--front', 'a/b=c'],
                     ['device', 'add', 'vbd', '1', '2', '--backend', '32752'],
                     ['device', 'rm', 'vbd', '1'], ['device', 'ls', '1', '2'],
                     ['block-attach', '1'], ['block-attach', '1', 'img', '--vdev', 'xvdb1'],
                     ['block-attach', '1', 'img', '--vdev', 'hda'], ['block-detach', '1'],
                     ['block-detach', '1', 'xvdb', '--timeout', 'x'],
                     ['block-detach', '1', 'sda']]:
            with self.subTest(args=args):
                r = run(args, expect=2)
                self.assertEqual(r.out, '')
                self.assertTrue(r.err.startswith('pvabi: '), r.err)
                self.assertIn('usage: pvabi', r.err)

    def test_unknown_platform(self):
        r = run(['--platform', 'bogus', 'info'], expect=1)
        self.assertRegex(r.err.splitlines()[-1], r'^pvabi: opening bogus: ')

    def test_xen_missing(self):
        if os.access('/dev/xen/privcmd', os.R_OK | os.W_OK):
            self.skipTest('this host has Xen')
        for cmd in (['info'], ['list'], ['store', 'ls']):
            with self.subTest(cmd=cmd):
                r = run(['--platform', 'xen'] + cmd, expect=1)
                self.assertRegex(r.err.splitlines()[-1], r'^pvabi: opening xen: .+')

    def test_no_daemon(self):
        sock = os.path.join(TMP, 'nobody.sock')
        r = run(['--platform', 'local:' + sock, 'list'], expect=1)
        lines = r.err.splitlines()
        self.assertRegex(lines[-1], r'^pvabi: opening local:.*nobody.sock: ')
        # The library's explanation comes first.
        self.assertGreater(len(lines), 1, r.err)
        self.assertIn('pvabi-hv', r.err)
        r = run(['--json', 'hv', 'status', '--socket', sock], expect=1)
        self.assertEqual(json.loads(r.out), {'running': False, 'socket': sock})
        self.assertEqual(run(['hv', 'status', '--socket', sock], expect=1).out,
                         f'not running: socket {sock}\n')
        r = run(['hv', 'stop', '--socket', sock], expect=1)
        self.assertIn('no pvabi-hv answers on', r.err)

    def test_hv_start_failures(self):
        sock = os.path.join(TMP, 'fail.sock')
        r = run(['hv', 'start', '--socket', sock], expect=1,
                env=dict(ENV, PVABI_HV='/nonexistent/pvabi-hv'))
        self.assertIn('/nonexistent/pvabi-hv', r.err)
        # Options it does not know go to pvabi-hv, whose refusal is reported.
        r = run(['hv', 'start', '--socket', sock, '--log-level', 'loud'], expect=1)
        self.assertIn('exited with status 2', r.err)
        run(['hv', 'status', '--socket', sock], expect=1)


class TestHvSafety(unittest.TestCase):
    def test_stop_signals_only_pvabi_hv(self):
        # Something else listens on the socket (this very process): `hv stop`
        # must find out and signal nobody, or this test dies of SIGTERM.
        sock = os.path.join(tempfile.mkdtemp(dir=TMP), 'other.sock')
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        srv.bind(sock)
        srv.listen(8)
        stop = threading.Event()

        def hang_up():
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    srv.accept()[0].close()
                except socket.timeout:
                    pass
        t = threading.Thread(target=hang_up)
        t.start()
        try:
            r = run(['hv', 'stop', '--socket', sock], expect=1)
            self.assertIn('something other than pvabi-hv answers', r.err)
            r = run(['hv', 'status', '--socket', sock], expect=1)
            self.assertIn('something other than pvabi-hv answers', r.err)
        finally:
            stop.set()
            t.join()
            srv.close()

    def test_start_timeout_kills_the_detached_daemon(self):
        # A "pvabi-hv" that detaches (as --daemon does) and never gets ready:
        # `hv start` gives up after its 10 s and leaves nothing running.
        d = tempfile.mkdtemp(dir=TMP)
        fake, pidfile = os.path.join(d, 'fake-hv'), os.path.join(d, 'pid')
        with open(fake, 'w') as f:
            f.write(f'#!/bin/sh\nsleep 600 &\necho $! > {pidfile}\nexit 0\n')
        os.chmod(fake, 0o755)
        r = run(['hv', 'start', '--socket', os.path.join(d, 'hv.sock')], expect=1,
                env=dict(ENV, PVABI_HV=fake))
        self.assertIn('waiting for', r.err)
        with open(pidfile) as f:
            pid = int(f.read())
        self.assertFalse(os.path.exists(f'/proc/{pid}'), f'the detached process {pid} survived')


class TestToolstackRefused(unittest.TestCase):
    def test_other_uid_only(self):
        sock = os.path.join(tempfile.mkdtemp(dir=TMP), 'hv.sock')
        # An option for pvabi-hv itself: only another uid may be the toolstack.
        run(['hv', 'start', '--socket', sock, '--allow-uid', os.getuid() + 1])
        try:
            r = run(['--platform', 'local:' + sock, 'list'], expect=1)
            self.assertRegex(r.err.splitlines()[-1],
                             r'^pvabi: opening local:.* as a toolstack: Operation not permitted$')
            self.assertIn('--allow-uid', r.err)  # the library says what to do
        finally:
            run(['hv', 'stop', '--socket', sock])


class TestDefaultSocket(unittest.TestCase):
    def test_start_status_stop(self):
        env = dict(ENV, XDG_RUNTIME_DIR=tempfile.mkdtemp(dir=TMP), PVABI_PLATFORM='local')
        sock = os.path.join(env['XDG_RUNTIME_DIR'], 'pvabi', 'hv.sock')
        r = run(['--json', 'hv', 'start'], env=env)
        started = json.loads(r.out)
        self.assertEqual(started['socket'], sock)
        self.assertTrue(started['started'])
        try:
            r = run(['hv', 'status'], env=env)
            self.assertEqual(r.out, f'running: pid {started["pid"]}, socket {sock}\n')
            # The default platform and socket find it too.
            run(['list'], env=env)
            r = run(['hv', 'start'], env=env, expect=1)
            self.assertIn('already running', r.err)
        finally:
            r = run(['--json', 'hv', 'stop'], env=env)
        self.assertEqual(json.loads(r.out),
                         {'stopped': True, 'pid': started['pid'], 'socket': sock})
        self.assertFalse(os.path.exists(sock))
        run(['hv', 'status'], env=env, expect=1)


# ---- on a private daemon -----------------------------------------------------------

class TestInfo(DaemonCase):
    KEYS = ['host', 'release', 'version', 'machine', 'nr_cpus', 'max_cpu_id', 'nr_nodes',
            'cores_per_socket', 'threads_per_core', 'cpu_mhz', 'hw_caps', 'virt_caps',
            'total_memory', 'free_memory', 'xen_major', 'xen_minor', 'xen_extra',
            'xen_version', 'xen_caps', 'xen_pagesize', 'xen_changeset', 'platform']

    def test_text(self):
        out = self.cli('info').out
        keys = [line[:23].rstrip() for line in out.splitlines()]
        self.assertEqual(keys, self.KEYS)
        for line in out.splitlines():
            self.assertRegex(line, r'^[a-z_]+ *:( .*)?$')
        info = {line[:23].rstrip(): line[25:] for line in out.splitlines()}
        self.assertEqual(info['platform'], 'local')
        self.assertEqual(info['xen_pagesize'], '4096')
        self.assertEqual(info['xen_version'],
                         info['xen_major'] + '.' + info['xen_minor'] + info['xen_extra'])
        self.assertEqual(info['machine'], os.uname().machine)
        self.assertIn('gnttab-v1', info['virt_caps'].split())
        self.assertRegex(info['cpu_mhz'], r'^\d+\.\d{3}$')

    def test_json(self):
        info = self.json('info')
        self.assertEqual(list(info), self.KEYS)
        self.assertEqual(info['platform'], 'local')
        self.assertEqual(info['nr_cpus'], os.cpu_count())
        self.assertIsInstance(info['virt_caps'], list)
        self.assertLessEqual(info['free_memory'], info['total_memory'])


class TestList(DaemonCase):
    HEADER = 'Name                                        ID   Mem VCPUs\tState\tTime(s)'
    ROW = re.compile(r'^(.{40}) +(\d+) +(\d+) +(\d+)     ([-rbpscwSd?]{6})  +(\d+\.\d)$')

    def listed(self, *domids):
        lines = self.cli('list', *domids).out.splitlines()
        self.assertEqual(lines[0], self.HEADER)
        found = {}
        for line in lines[1:]:
            m = self.ROW.match(line)
            self.assertTrue(m, f'not in xl list layout: {line!r}')
            found[int(m.group(2))] = (m.group(1).rstrip(), int(m.group(4)), m.group(5))
        return found

    def test_domains(self):
        a, b = self.helper(), self.helper()
        found = self.listed()
        self.assertEqual(set(found), {a.domid, b.domid})  # the CLI itself is no domain
        name, vcpus, state = found[a.domid]
        self.assertGreaterEqual(vcpus, 1)
        self.assertEqual(state[2:], '----')
        name_node = f'/local/domain/{a.domid}/name'
        self.assertEqual(name, self.cli('store', 'read', name_node).out.rstrip('\n'))
        self.cli('store', 'write', name_node, 'helper-a')
        self.assertEqual(self.listed(a.domid)[a.domid][0], 'helper-a')
        self.cli('store', 'rm', name_node)
        self.assertEqual(self.listed(a.domid)[a.domid][0], '(null)')  # as xl prints it
        self.assertIsNone(self.json('list', a.domid)[0]['name'])

    def test_json(self):
        a = self.helper()
        a.ask('share 0 3')
        doms = {d['domid']: d for d in self.json('list')}
        self.assertIn(a.domid, doms)
        d = doms[a.domid]
        self.assertEqual(d['tot_pages'], 3)
        self.assertEqual(d['mem_mib'], 0)
        self.assertFalse(d['dying'])
        self.assertIsNone(d['shutdown_reason'])
        self.assertEqual(len(d['state']), 6)
        self.assertEqual([d['domid'] for d in self.json('list', a.domid)], [a.domid])

    def test_missing_domain(self):
        r = self.cli('list', '32000', expect=1)
        self.assertEqual(r.err.splitlines()[-1], 'pvabi: list: domain 32000: no such domain')
        self.assertEqual(r.out.splitlines(), [self.HEADER])
        r = self.cli('--json', 'list', '32000', expect=1)
        self.assertEqual(json.loads(r.out), [])


class TestStore(DaemonCase):
    def test_write_read_ls_rm(self):
        self.assertEqual(self.cli('store', 'write', '/t/a', 'hello', '/t/b/c', '-1').out, '')
        self.assertEqual(self.cli('store', 'read', '/t/a', '/t/b/c').out, 'hello\n-1\n')
        self.assertEqual(self.cli('store', 'ls', '/t').out,
                         'a = "hello"\nb = ""\n c = "-1"\n')
        self.assertIn('t = ""\n a = "hello"\n', self.cli('store', 'ls').out)
        self.assertEqual(self.json('store', 'ls', '/t'),
                         {'/t/a': 'hello', '/t/b': '', '/t/b/c': '-1'})
        self.assertEqual(self.json('store', 'read', '/t/a'), {'/t/a': 'hello'})
        self.assertEqual(self.json('store', 'rm', '/t/b'), {'removed': ['/t/b']})
        self.cli('store', 'rm', '/t/nothing')  # a missing node under an existing parent: fine
        r = self.cli('store', 'read', '/t/a', '/t/b', expect=1)
        self.assertEqual(r.out, 'hello\n')
        self.assertEqual(r.err.splitlines()[-1],
                         'pvabi: store read /t/b: No such file or directory')
        r = self.cli('--json', 'store', 'read', '/t/a', '/t/b', expect=1)
        self.assertEqual(json.loads(r.out), {'/t/a': 'hello'})
        r = self.cli('store', 'ls', '/nowhere', expect=1)
        self.assertIn('pvabi: store ls /nowhere: ', r.err)
        self.assertEqual(self.json('store', 'write', '/t/x', '1'), {'written': ['/t/x']})

    def test_escaping(self):
        value = 'q"b\\n\nt\tc\x01 é€𝄞'
        self.cli('store', 'write', '/e/v', value)
        self.assertEqual(self.json('store', 'read', '/e/v'), {'/e/v': value})
        self.assertEqual(self.cli('store', 'ls', '/e').out,
                         'v = "q\\"b\\\\n\\nt\\tc\\x01 ' + ''.join(
                             f'\\x{b:02x}' for b in 'é€𝄞'.encode()) + '"\n')
        # Bytes that are not UTF-8 still make valid JSON (\u00XX each).
        self.cli('store', 'write', '/e/raw', b'\xff\xfeok')
        self.assertEqual(self.json('store', 'read', '/e/raw'), {'/e/raw': '\xff\xfeok'})

    def watch(self, *args):
        return subprocess.Popen([PVABI, '--platform', self.platform, 'store', 'watch'] +
                                list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=ENV, text=True)

    def test_watch_count(self):
        p = self.watch('--count', '3', '/w/x')
        # The first event: Xen fires a watch once when it is set.
        self.assertEqual(p.stdout.readline(), '/w/x /w/x\n')
        self.cli('store', 'write', '/w/x', '1')
        self.cli('store', 'write', '/w/x/y', '2')
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual((p.returncode, out, err), (0, '/w/x /w/x\n/w/x/y /w/x\n', ''))

    def test_watch_timeout(self):
        r = self.cli('store', 'watch', '--timeout', '0.2', '/w/t')
        self.assertEqual(r.out, '/w/t /w/t\n')
        r = self.cli('store', 'watch', '--count', '5', '--timeout', '0.2', '/w/t', expect=1)
        self.assertEqual(r.err.splitlines()[-1],
                         'pvabi: store watch: timed out after 1 of 5 events')
        doc = self.json('store', 'watch', '--count', '1', '--timeout', '10', '/w/t', '/w/u')
        self.assertEqual(doc['watches'], ['/w/t', '/w/u'])
        self.assertEqual(len(doc['events']), 1)
        self.assertIn(doc['events'][0]['token'], ['/w/t', '/w/u'])

    def test_watch_sigint(self):
        p = self.watch('/w/s')
        self.assertEqual(p.stdout.readline(), '/w/s /w/s\n')
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual((p.returncode, out, err), (0, '', ''))
        # --json: the document is closed on the signal.
        p = self.watch('--json', '/w/s')
        seen = ''
        while '}' not in seen:  # the first event is out
            seen += p.stdout.read(1)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(json.loads(seen + out),
                         {'watches': ['/w/s'], 'events': [{'path': '/w/s', 'token': '/w/s'}]})


class TestChannelsGrants(DaemonCase):
    def setUp(self):
        self.a, self.b = self.helper(), self.helper()
        a, b = self.a, self.b
        self.refs = a.ask(f'share {b.domid} 2') + a.ask(f'share {b.domid} 1 ro')
        self.pa = a.ask(f'alloc {b.domid}')[0]
        self.pb = b.ask(f'bind {a.domid} {self.pa}')[0]
        self.pu = a.ask(f'alloc {b.domid}')[0]
        b.reply_of(f'map {a.domid} {self.refs[0]}', 'mapped')

    def test_channels(self):
        a, b = self.a.domid, self.b.domid
        out = self.cli('channels').out
        check_aligned(self, out, [True, True, False, True, True])
        got = rows(out)
        self.assertEqual(got[0], ['Domain', 'Port', 'State', 'Remote-dom', 'Remote-port'])
        self.assertIn([str(a), str(self.pa), 'interdomain', str(b), str(self.pb)], got)
        self.assertIn([str(b), str(self.pb), 'interdomain', str(a), str(self.pa)], got)
        self.assertIn([str(a), str(self.pu), 'unbound', str(b), '-'], got)
        ports = self.json('channels', b)
        self.assertEqual(ports, [{'domid': b, 'port': self.pb, 'state': 'interdomain',
                                  'vcpu': 0, 'remote_domid': a, 'remote_port': self.pa}])
        r = self.cli('channels', '32000', expect=1)
        self.assertEqual(r.err.splitlines()[-1], 'pvabi: channels: domain 32000: no such domain')

    def test_grants(self):
        a, b = self.a.domid, self.b.domid
        out = self.cli('grants').out
        check_aligned(self, out, [True, True, True, False, True, False])
        got = rows(out)
        self.assertEqual(got[0], ['Granter', 'Ref', 'Grantee', 'Access', 'Maps', 'State'])
        self.assertEqual(sorted(got[1:]), sorted([
            [str(a), str(self.refs[0]), str(b), 'rw', '1', 'active'],
            [str(a), str(self.refs[1]), str(b), 'rw', '0', 'active'],
            [str(a), str(self.refs[2]), str(b), 'ro', '0', 'active']]))
        self.assertEqual(self.json('grants', b), [])
        self.assertEqual(self.json('grants', a)[0], {'granter': a, 'ref': self.refs[0],
                                                     'grantee': b, 'access': 'rw', 'maps': 1,
                                                     'state': 'active'})
        r = self.cli('grants', '32000', expect=1)
        self.assertEqual(r.err.splitlines()[-1], 'pvabi: grants: domain 32000: no such domain')

    def test_peer_death(self):
        a, b = self.a.domid, self.b.domid
        self.a.stop()  # its process is gone; b still maps one of its pages
        doms = {d['domid']: d for d in self.json('list')}
        self.assertTrue(doms[a]['dying'])
        self.assertEqual(doms[a]['state'][5], 'd')
        self.assertEqual(self.json('grants', a), [{'granter': a, 'ref': self.refs[0],
                                                   'grantee': b, 'access': 'rw', 'maps': 1,
                                                   'state': 'dying'}])
        # Xen's rebind: b's port is offered again to the domain that left.
        self.assertEqual(self.json('channels', b),
                         [{'domid': b, 'port': self.pb, 'state': 'unbound', 'vcpu': 0,
                           'remote_domid': a, 'remote_port': None}])

    def test_hv_start_twice(self):
        r = run(['hv', 'start', '--socket', self.sock], expect=1)
        self.assertRegex(r.err, r'already running: pid \d+ answers on ')


class TestDevice(DaemonCase):
    """The toolstack step: device add/rm/ls, block-attach/-detach."""

    def json(self, *args):
        return json.loads(self.cli('--json', *args).out)

    def tree(self, path):
        return self.json('store', 'ls', path)

    def test_add_ls_rm(self):
        self.assertEqual(self.json('device', 'add', 'vif', '7', '3', '--back', 'mac=00:16:3e:0:0:1',
                                   '--back', 'bridge=xenbr0', '--front', 'mac=00:16:3e:0:0:1'),
                         {'frontend': '/local/domain/7/device/vif/3',
                          'backend': '/local/domain/0/backend/vif/7/3'})
        self.assertEqual(self.tree('/local/domain/7/device/vif/3'), {
            '/local/domain/7/device/vif/3/backend': '/local/domain/0/backend/vif/7/3',
            '/local/domain/7/device/vif/3/backend-id': '0',
            '/local/domain/7/device/vif/3/state': '1',
            '/local/domain/7/device/vif/3/mac': '00:16:3e:0:0:1'})
        self.assertEqual(self.tree('/local/domain/0/backend/vif/7/3'), {
            '/local/domain/0/backend/vif/7/3/frontend': '/local/domain/7/device/vif/3',
            '/local/domain/0/backend/vif/7/3/frontend-id': '7',
            '/local/domain/0/backend/vif/7/3/online': '1',
            '/local/domain/0/backend/vif/7/3/state': '1',
            '/local/domain/0/backend/vif/7/3/mac': '00:16:3e:0:0:1',
            '/local/domain/0/backend/vif/7/3/bridge': 'xenbr0'})
        # The owner and the readers are the two domains (Xen's perms).
        self.assertEqual(self.json('device', 'ls', '7'), [{
            'type': 'vif', 'frontend': 7, 'devid': 3, 'backend': 0, 'frontend_state': 1,
            'backend_state': 1, 'frontend_path': '/local/domain/7/device/vif/3',
            'backend_path': '/local/domain/0/backend/vif/7/3'}])
        self.cli('store', 'write', '/local/domain/0/backend/vif/7/3/state', '4')
        out = self.cli('device', 'ls').out
        self.assertIn('Type  Frontend  Devid  Backend  Front-state   Back-state\n', out)
        self.assertIn('vif          7      3        0  Initialising  Connected\n', out)
        # A frontend gone (its domain's directory removed): the backend is still listed.
        self.cli('store', 'rm', '/local/domain/7/device')
        self.assertIn('vif          7      3        0  -            Connected\n',
                      self.cli('device', 'ls').out)
        self.assertEqual(self.json('device', 'rm', 'vif', '7', '3'),
                         {'removed': ['/local/domain/7/device/vif/3',
                                      '/local/domain/0/backend/vif/7/3']})
        self.assertEqual(self.json('device', 'ls', '7'), [])
        self.cli('device', 'rm', 'vif', '7', '3')  # not there: no error
        self.assertEqual(self.cli('device', 'ls', '7').out,
                         'Type  Frontend  Devid  Backend  Front-state  Back-state\n')

    def test_backend_domain(self):
        self.cli('device', 'add', 'console', '9', '1', '--backend', '4')
        self.assertEqual(self.cli('store', 'read', '/local/domain/9/device/console/1/backend',
                                  '/local/domain/4/backend/console/9/1/frontend-id').out,
                         '/local/domain/4/backend/console/9/1\n9\n')
        self.cli('device', 'rm', 'console', '9', '1', '--backend', '4')
        self.cli('store', 'read', '/local/domain/9/device/console/1/state', expect=1)

    def vbd(self, fe, devid):
        back = self.tree(f'/local/domain/0/backend/vbd/{fe}/{devid}')
        front = self.tree(f'/local/domain/{fe}/device/vbd/{devid}')
        strip = lambda t: {k.rsplit('/', 1)[1]: v for k, v in t.items()}
        return strip(front), strip(back)

    def test_block_attach_detach(self):
        img = os.path.join(self.dir, 'disk.img')
        with open(img, 'wb') as f:
            f.truncate(1 << 20)
        r = self.cli('block-attach', '5', os.path.relpath(img), '--vdev', 'xvdb')
        self.assertEqual(r.out, 'xvdb 51728\n')
        front, back = self.vbd(5, 51728)
        self.assertEqual(front, {'backend': '/local/domain/0/backend/vbd/5/51728',
                                 'backend-id': '0', 'state': '1', 'virtual-device': '51728',
                                 'device-type': 'disk'})
        self.assertEqual(back, {'frontend': '/local/domain/5/device/vbd/51728',
                                'frontend-id': '5', 'online': '1', 'state': '1',
                                'params': os.path.realpath(img), 'mode': 'w', 'type': 'file',
                                'dev': 'xvdb', 'removable': '0', 'bootable': '1'})
        # Default vdev: the first free one; --ro; a numeric vdev; xl's numbering.
        self.assertEqual(self.cli('block-attach', '5', img, '--ro').out, 'xvda 51712\n')
        self.assertEqual(self.vbd(5, 51712)[1]['mode'], 'r')
        self.assertEqual(self.json('block-attach', '5', img, '--vdev', '51792'),
                         {'vdev': 'xvdf', 'devid': 51792,
                          'frontend': '/local/domain/5/device/vbd/51792',
                          'backend': '/local/domain/0/backend/vbd/5/51792'})
        self.assertEqual(self.cli('block-attach', '5', img, '--vdev', 'xvdp').out, 'xvdp 51952\n')
        self.assertEqual(self.cli('block-attach', '5', img, '--vdev', 'xvdq').out,
                         f'xvdq {(1 << 28) | (16 << 8)}\n')
        r = self.cli('block-attach', '5', os.path.join(self.dir, 'missing.img'), expect=1)
        self.assertRegex(r.err, r'pvabi: block-attach: .*missing.img: No such file')
        # Detach of a frontend that never connected: at once.
        self.assertEqual(self.json('block-detach', '5', 'xvda'),
                         {'removed': ['/local/domain/5/device/vbd/51712',
                                      '/local/domain/0/backend/vbd/5/51712']})
        self.cli('store', 'read', '/local/domain/0/backend/vbd/5/51712/state', expect=1)
        r = self.cli('block-detach', '5', 'xvda', expect=1)
        self.assertIn('pvabi: block-detach: domain 5 has no vbd xvda', r.err)
        for vdev in ('51792', 'xvdp', 'xvdq'):
            self.cli('block-detach', '5', vdev)
        self.assertEqual([d['devid'] for d in self.json('device', 'ls', '5')], [51728])

    def test_block_detach_waits_for_the_close(self):
        img = os.path.join(self.dir, 'disk2.img')
        open(img, 'wb').close()
        self.cli('block-attach', '6', img, '--vdev', 'xvdc')
        be, fe = '/local/domain/0/backend/vbd/6/51744', '/local/domain/6/device/vbd/51744'
        self.cli('store', 'write', be + '/state', '4', fe + '/state', '4')
        # Connected ends that do not close: the timeout, nothing removed.
        r = self.cli('block-detach', '6', 'xvdc', '--timeout', '0.2', expect=1)
        self.assertIn('waiting for the backend to close', r.err)
        self.assertEqual(self.cli('store', 'read', be + '/online', fe + '/state').out, '0\n4\n')
        self.cli('store', 'write', be + '/online', '1')
        # The backend closes when asked (online = 0): then both go.
        watch = subprocess.Popen([PVABI, '--platform', self.platform, 'store', 'watch',
                                  '--count', '2', '--timeout', str(TIMEOUT), be + '/online'],
                                 stdout=subprocess.PIPE, env=ENV, text=True)
        self.addCleanup(watch.wait)
        self.assertEqual(watch.stdout.readline().split()[0], be + '/online')  # registered
        detach = subprocess.Popen([PVABI, '--platform', self.platform, 'block-detach', '6',
                                   'xvdc', '--timeout', str(TIMEOUT)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        self.assertEqual(watch.stdout.readline().split()[0], be + '/online')  # online = 0
        watch.stdout.close()
        self.assertEqual(self.cli('store', 'read', be + '/online').out, '0\n')
        self.cli('store', 'write', be + '/state', '6')
        out, err = detach.communicate(timeout=TIMEOUT)
        self.assertEqual((detach.returncode, out, err), (0, b'', b''))
        self.assertEqual(self.json('device', 'ls', '6'), [])
        # --force: no asking.
        self.cli('block-attach', '6', img, '--vdev', 'xvdc')
        self.cli('store', 'write', be + '/state', '4', fe + '/state', '4')
        self.cli('block-detach', '6', 'xvdc', '--force')
        self.assertEqual(self.json('device', 'ls', '6'), [])


def main():
    install()
    try:
        prog = unittest.main(argv=[sys.argv[0], '-v'], exit=False)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == '__main__':
    main()
