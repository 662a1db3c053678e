"""vastsim: a local vast.ai. Same REST API and answer shapes; each rented instance a real sshd.

Run it with ``python -m vastsim serve`` (``--help`` explains the flags); it prints
``VAST_URL=...`` and ``VAST_API_KEY=...`` first. Point a client at it with those two variables,
the same names the official vast.ai CLI reads. In tests use ``vastsim.testing.VastSim`` or the
``vastsim`` pytest fixture.

Modules, one job each:

* ``catalogue``    offers (real recorded ones, ``data/offers.json``) and search semantics
* ``offer_sample`` how ``data/offers.json`` was drawn from the recording (re-runnable)
* ``instance``     one instance's stored facts and its vast.ai JSON record
* ``cloud``        the model: account, rents, timelines, sshd boots, persistence
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
