"""The raw SQL that workers sharing one database coordinate through: the only SQL in hpsearch.

Private to :mod:`hpsearch.store`: nothing else writes these rows, and only the store's
concern modules call these functions (each under the retry policy). Written as single SQL
statements or single transactions that every backend executes atomically, for what
Optuna does not give us safely across processes:

- **claiming a slot** (``claims``): ``Study.ask()`` pops WAITING trials with ``SELECT ...
  FOR UPDATE``, which SQLite ignores, so two SQLite workers were handed the same slot; and
  when no slot is left, ``ask()`` creates a brand-new trial, which breaks exact budgets. A
  conditional ``UPDATE ... WHERE state = 'WAITING'`` is a compare-and-swap on every
  backend, and the heartbeat row is written in the same transaction, so no claimed trial
  is ever without one (Optuna never fails a RUNNING trial that has no heartbeat row).
- **re-queueing a slot** (``claims``, ``failures``): Optuna's ``fail_stale_trials`` reads
  the state, writes FAIL, then lets ``RetryHeartbeatStaleTrialCallback`` add the copy in
  another transaction. On SQLite the read takes no lock, so workers recovering at once all
  "win": 8 processes recovering 20 stale trials queued 26 to 33 copies (points run twice,
  budgets overshot). Here the FAIL is a compare-and-swap on ``state = 'RUNNING'`` and the
  copy is inserted in the same transaction: exactly one copy, or none, even if the worker
  dies half-way.
- **a lease** (``leases``): one worker prepares a stage; if it dies, the lease expires and
  another takes over. Insert-if-absent and update-if-expired are both single statements.
- **a fenced write** (``leases``): the lease is renewed *in the same transaction* as the
  slots or attrs it writes, and the slots already there are read in that transaction too.
  A preparer that froze past its lease and wakes up finds its token gone and writes
  nothing; the lease row lock orders it after the worker that took over, so no slot is
  ever added twice.
- **the epoch budget** (``budget``): slots bought by stopped runs' unspent epochs are
  appended under the study's write lock, so racing workers never append one too many.

``rows`` holds the statements these share; ``studies`` the study-level reads and writes.
"""
