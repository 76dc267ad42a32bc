/*
 * test/proofs/waker.pml -- Promela model of asio_waker's waker protocol, checked with spin.
 *
 * A model of the state word: the member functions of basic_waker_state
 * (include/asio_waker/detail/waker_state.hpp: wake, try_consume_permit, park, cancel),
 * called in the order in which the static moves of waker_service
 * (include/asio_waker/detail/waker_service.hpp) call them:
 *   async_wait   waker_service::async_wait: try_consume_permit, then post_with_permit;
 *                or waker_service::park: state.park, then the permit's or the replaced
 *                operation's hand-off
 *   wake         waker_service::take_and_complete: state.wake, then the hand-off
 *   cancel       waker_service::take_and_abort (cancel(), a cancellation slot's handler,
 *                and, followed by the state's end, waker_service::destroy)
 * Each comment names the C++ function a step mirrors. A hand-off is one step,
 * `complete`: which hand-off the service takes (the scheduler's queue or the portable
 * post()), the scheduler's work count, and the permit that post_or_restore_permit puts
 * back when a portable post() throws are modelled by the C++ checker only
 * (test/proofs/interleave.cpp), which runs the service's real functions.
 *
 * Each atomic operation on the word is one atomic step; a compare-exchange is one atomic
 * step that either succeeds (word == expected) or fails and reloads. Memory model:
 * sequential consistency (the weak-memory argument is in waker_state.hpp's header
 * comment and is checked by interleave.cpp and TSan). Spurious CAS failures are not
 * modelled here (they are in interleave.cpp).
 *
 * Scenarios (compile-time, spin -DSCENARIO=n):
 *   1 wake vs register                 2 two wakes vs register
 *   3 wake vs register + cancel        4 register-replace vs wake
 *   5 register-replace vs two wakes    6 permit consume vs wake (initial permit)
 *   7 wake vs destroy after completion 8 two wakes vs register + cancel + register
 * Invariants (assertions): one owner at a time (I1), no double completion / no success
 * after an abort (I2), no lost wake and no phantom permit (I3/I4: a permit model kept in
 * the same atomic step as the word), final state consistent (I5), no access after destroy.
 * Liveness (LTL `live`, at the end): once a wake has happened while the consumer's
 * first wait A is pending, A is eventually completed. Checked in EVERY scenario (ci.sh
 * runs it on all eight, under weak fairness).
 */

#ifndef SCENARIO
#define SCENARIO 1
#endif
/* -DMUTANT=1: park() stores instead of CAS; -DMUTANT=2: cancel() stores instead of CAS.
 * Both must be caught (ci.sh checks that). */
#ifndef MUTANT
#define MUTANT 0
#endif

#define EMPTY    0
#define NOTIFIED 1
#define OPA      2
#define OPB      3
#define NOPS     4
#define is_op(v) ((v) > NOTIFIED)

/* owner values */
#define FRESH  250
#define PARKED 251
#define DONE   252

/* outcomes */
#define NONE      0
#define SUCCESS   1
#define ABORTED   2

byte word = EMPTY;            /* basic_waker_state::word_ */
bool alive = true;            /* false once waker_service::destroy has run */
byte owner[NOPS];
byte outcome[NOPS];
byte completions[NOPS];
bool constructed[NOPS];
bool model_permit = false;    /* the permit the contract says is stored */
byte wakes_done = 0;
bool waiting_since_wake = false; /* A registered and a wake happened after it: for `live` */
bool a_registered = false;

/* The owner hands a taken op over: waker_service's hand-offs (post_deferred,
 * post_aborted, post_with_permit), with success or operation_aborted. */
inline complete(p, out) {
  assert(owner[p] == _pid);            /* I1: only the owner completes */
  assert(completions[p] == 0);         /* I2: no double completion */
  completions[p]++;
  outcome[p] = out;
  owner[p] = DONE
}

/* Taking a parked op out of the word, in the same atomic step as the RMW. */
inline take(p) {
  assert(owner[p] == PARKED);          /* I1: one owner at a time */
  owner[p] = _pid
}

/* Book-keeping for `live` after each wake. */
inline wake_done() {
  wakes_done++;
  if :: a_registered && completions[OPA] == 0 -> waiting_since_wake = true :: else fi
}

/* waker_service::take_and_complete -> basic_waker_state::wake, then the hand-off. */
proctype producer() {
  byte cur, took = EMPTY;
  bool done = false;
  assert(alive);
  cur = word;                                   /* wake: load(relaxed) */
  do
  :: done -> break
  :: !done && cur == NOTIFIED ->
       atomic { alive ->                        /* wake: fetch_add(0, release), never fails */
         cur = word;                            /*   reads the latest value, writes it back */
         if
         :: cur == NOTIFIED -> model_permit = true; wake_done(); done = true   /* refreshed */
         :: else                                /*   changed under us: re-decide */
         fi }
  :: !done && cur != NOTIFIED ->
       if
       :: atomic { (alive && word == cur) ->    /* wake: CAS succeeds */
            if
            :: is_op(cur) -> word = EMPTY; take(cur); took = cur    /* op -> EMPTY (acquire) */
            :: else -> word = NOTIFIED; model_permit = true          /* EMPTY -> NOTIFIED (release) */
            fi;
            wake_done(); done = true }
       :: atomic { (alive && word != cur) -> cur = word }   /* CAS fails: re-decide */
       fi
  od;
  if
  :: is_op(took) -> complete(took, SUCCESS)     /* take_and_complete: post_deferred, success */
  :: else
  fi
}

/* waker_service::async_wait for op q. */
inline async_wait(q) {
  constructed[q] = true; owner[q] = _pid;       /* the operation is allocated, constructed */
  if :: q == OPA -> a_registered = true :: else fi;
  /* basic_waker_state::try_consume_permit */
  assert(alive);
  if
  :: atomic { word == NOTIFIED ->               /* load(relaxed) sees NOTIFIED ... */
       word = EMPTY;                            /* ... exchange(EMPTY, acquire) */
       assert(model_permit); model_permit = false };   /* I4: a wake stored it */
     complete(q, SUCCESS)                       /* waker_service::post_with_permit */
  :: atomic { word != NOTIFIED ->               /* not NOTIFIED: waker_service::park */
       cur = word };                            /* basic_waker_state::park: load(relaxed) */
     do
     :: cur == NOTIFIED ->                      /* park: a permit arrived meanwhile */
        atomic { word = EMPTY;                  /* exchange(EMPTY, acquire): producers */
          assert(model_permit); model_permit = false };  /* only rewrite NOTIFIED */
        complete(q, SUCCESS);                   /* waker_service::park: consumed_permit */
        break
     :: cur != NOTIFIED ->
        if
#if MUTANT == 1
        :: atomic { true ->                     /* MUTANT 1: plain store instead of the CAS */
#else
        :: atomic { word == cur ->              /* park: CAS(cur -> q) acq_rel succeeds */
#endif
             word = q;
             assert(owner[q] == _pid); owner[q] = PARKED;
             if :: is_op(cur) -> take(cur) :: else fi };
           if
           :: is_op(cur) -> complete(cur, ABORTED)   /* waker_service::park: replaced, post_aborted */
           :: else
           fi;
           break
        :: atomic { word != cur -> cur = word } /* park: CAS fails, re-decide */
        fi
     od
  fi
}

/* waker_service::take_and_abort (cancel(), a cancellation slot's handler, the
 * destructor) -> basic_waker_state::cancel, then post_aborted. */
inline cancel_() {
  assert(alive);
  cur = word;                                   /* cancel: load(relaxed) */
  if
  :: is_op(cur) ->
     if
#if MUTANT == 2
     :: atomic { true -> word = EMPTY; owner[cur] = _pid };  /* MUTANT 2: plain store */
#else
     :: atomic { word == cur -> word = EMPTY; take(cur) };  /* cancel: CAS(op -> EMPTY) */
#endif
        complete(cur, ABORTED)                  /* take_and_abort: post_aborted */
     :: atomic { word != cur -> skip }          /* a wake took it first: returns 0 */
     fi
  :: else                                       /* nothing parked: returns 0, permit kept */
  fi
}

/* waker_service::destroy (the waker's destructor): take_and_abort, then the state is
 * gone. */
inline destroy_() {
  cancel_();
  alive = false
}

proctype consumer() {
  byte cur;
#if SCENARIO == 1 || SCENARIO == 2
  async_wait(OPA);
#elif SCENARIO == 3
  async_wait(OPA); cancel_();
#elif SCENARIO == 4 || SCENARIO == 5
  async_wait(OPA); async_wait(OPB);
#elif SCENARIO == 6
  async_wait(OPA); async_wait(OPB);
#elif SCENARIO == 7
  async_wait(OPA);
  completions[OPA] > 0;                         /* the handler of A has run */
  destroy_();
#elif SCENARIO == 8
  async_wait(OPA); cancel_(); async_wait(OPB);
#endif
  skip
}

init {
  byte i;
  for (i : 0 .. NOPS - 1) { owner[i] = FRESH }
#if SCENARIO == 6
  /* setup: an earlier wake stored the permit */
  word = NOTIFIED; model_permit = true;
#endif
  atomic {
    run consumer();
    run producer();
#if SCENARIO == 2 || SCENARIO == 5 || SCENARIO == 8
    run producer();
#endif
  }
  _nr_pr == 1;                                  /* all done */
  /* I3 / I4: the word's permit is exactly the contract's permit */
  assert(model_permit == (word == NOTIFIED) || !alive);
  /* I5: every op completed exactly once, or it is the op still parked */
  for (i : OPA .. OPB) {
    if
    :: constructed[i] ->
       assert(completions[i] == 1 || (completions[i] == 0 && word == i && owner[i] == PARKED))
    :: else
    fi
  }
}

/* Liveness, checked in every scenario: once a wake happened while A was pending (not yet
 * completed), A is eventually completed. In 1, 2 and 7 a wake completes A; in 3 and 8
 * the consumer's cancel may complete it first, in 4 and 5 its replacing wait may, and in
 * 6 A completes with the initial permit: either way A is completed. */
ltl live { [] (waiting_since_wake -> <> (completions[OPA] > 0)) }
