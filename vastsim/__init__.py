"""vastsim: a local vast.ai. Same REST API and answer shapes; each rented instance a real sshd.

Run it with ``python -m vastsim serve`` (``--help`` explains the flags); it prints
``VAST_URL=...`` and ``VAST_API_KEY=...`` first. Point a client at it with those two variables,
the same names the official vast.ai CLI reads. In tests use ``vastsim.testing.VastSim`` or the
``vastsim`` pytest fixture.

It plays an account opened after 2026-06-02, as every new vast.ai account is: the old list
``GET /api/v0/instances/`` answers 410 ``deprecated_endpoint`` and the list is
``GET /api/v1/instances/`` (``--account-created 2025-01-01`` plays an older account). It needs
OpenSSH: without ``/usr/sbin/sshd`` (or the absolute path in ``$VASTSIM_SSHD``) and
``ssh-keygen`` it refuses to start, exit code 2, naming the package to install.

Interruptible instances: a bid under the offer's ``min_bid`` waits in ``scheduling`` (storage
billing); ``POST /_sim/outbid`` pushes a running bid instance to ``actual_status: stopped``
with ``intended_status: running`` and ``cur_state: stopped`` (storage billing, sshd stopped),
which is what ``providers.records.is_outbid`` reads; ``POST /_sim/busy`` takes a machine's GPUs
so a rent there is refused (``cancel_unavail``) or queued as a stopped instance (vastsim/bids.py).

Modules, one job each:

* ``catalogue``    offers (real recorded ones, ``data/offers.json``) and search semantics
* ``offer_sample`` how ``data/offers.json`` was drawn from the recording (re-runnable)
* ``instance``     one instance's stored facts and its vast.ai JSON record
* ``cloud``        the model: rents, timelines, sshd boots, persistence
* ``admin``        the model's admin side (seed, outbid, busy, kill, ledger, internals)
* ``accounts``     the account: creation date (the v0 list 410) and SSH keys
* ``rentspec``     what a rent body may hold (vast.ai's checks)
* ``listing``      ``GET /api/v1/instances/``: filters, order, keyset pages
* ``bids``         outbid and busy machines: why an instance cannot run
* ``seed``         foreign instances for tests (not ours, no sshd)
* ``ledger``       per-second billing
* ``faults``       fault injection specs (the JSON format is in its docstring)
* ``api``          HTTP routes, vast.ai's and the ``/_sim/`` admin ones
* ``server``       process lifecycle (signals, clean shutdown); ``__main__`` the CLI
* ``sshhost``      one instance's sshd in a private mount namespace (/app, /work)
* ``testing``      the ``VastSim`` subprocess wrapper for tests
* ``errors``       the exception tree

Inside an instance (SSH sessions and onstart) these are set: ``CONTAINER_ID``,
``CONTAINER_API_KEY`` (valid for this instance only), ``VAST_CONTAINERLABEL=C.<id>``,
``PUBLIC_IPADDR``, ``GPU_COUNT``, ``JUPYTER_TOKEN``, ``SSH_PUBLIC_KEY``, ``VAST_TCP_PORT_22``
(and ``VAST_TCP_PORT_<p>`` per ``-p`` request), ``APP_DIR``/``WORK_DIR``, every env var of the
rent that is a valid name (``-p``/``-h`` docker flags are not), and ``VAST_URL``: this vastsim's
base URL, so ``vastai ... --api-key $CONTAINER_API_KEY`` inside an instance reaches vastsim.
"""
