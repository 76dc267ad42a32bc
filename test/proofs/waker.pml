/*
 * test/proofs/waker.pml -- Promela model of asio_waker's waker protocol, checked with spin.
 *
 * Mirrors include/asio_waker/detail/waker_state.hpp (WS:line) and the call sequences of
 * include/asio_waker/atomic_waker.hpp (AW:line). Each atomic operation on the word is
 * one atomic step; a compare-exchange is one atomic step that either succeeds (word ==
 * expected) or fails and reloads. Memory model: sequential consistency (the weak-memory
 * argument is in waker_state.hpp's header comment and is checked by the C++ interleaving
 * checker, test/proofs/interleave.cpp, and TSan). Spurious CAS failures are not modelled
 * here (they are in interleave.cpp).
 *
 * Scenarios (compile-time, spin -DSCENARIO=n):
 *   1 wake vs register                 2 two wakes vs register
 *   3 wake vs register + cancel        4 register-replace vs wake
 *   5 register-replace vs two wakes    6 permit consume vs wake (initial permit)
 *   7 wake vs destroy after completion 8 two wakes vs register + cancel + register
 * Invariants (assertions): one owner at a time (I1), no double completion / no success
 * after an abort (I2), no lost wake and no phantom permit (I3/I4: a permit model kept in
 * the same atomic step as the word), final state consistent (I5), no access after destroy.
 * Liveness (LTL `live`): once a wake has happened after the consumer's wait was
 * registered, that wait is eventually completed (scenarios without cancel: 1, 2, 4, 6).
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

byte word = EMPTY;            /* WS: word_ */
bool alive = true;            /* false after ~basic_atomic_waker (AW:98-103) */
byte owner[NOPS];
byte outcome[NOPS];
byte completions[NOPS];
bool constructed[NOPS];
bool model_permit = false;    /* the permit the contract says is stored */
byte wakes_done = 0;
bool waiting_since_wake = false; /* A registered and a wake happened after it: for `live` */
bool a_registered = false;

/* The owner hands a taken op to the executor (AW:240-252: hand_off / hand_off_aborted). */
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

/* basic_atomic_waker::wake -> basic_waker_state::wake (WS: wake()). */
inline wake_done() {
  wakes_done++;
  if :: a_registered && completions[OPA] == 0 -> waiting_since_wake = true :: else fi
}

proctype producer() {
  byte cur, took = EMPTY;
  bool done = false;
  assert(alive);
  cur = word;                                   /* WS wake: load(relaxed) */
  do
  :: done -> break
  :: !done && cur == NOTIFIED ->
       atomic { alive ->                        /* WS wake: fetch_add(0, release), never fails */
         cur = word;                            /*   reads the latest value, writes it back */
         if
         :: cur == NOTIFIED -> model_permit = true; wake_done(); done = true   /* refreshed */
         :: else                                /*   changed under us: re-decide */
         fi }
  :: !done && cur != NOTIFIED ->
       if
       :: atomic { (alive && word == cur) ->    /* WS wake: CAS succeeds */
            if
            :: is_op(cur) -> word = EMPTY; take(cur); took = cur    /* op -> EMPTY (acquire) */
            :: else -> word = NOTIFIED; model_permit = true          /* EMPTY -> NOTIFIED (release) */
            fi;
            wake_done(); done = true }
       :: atomic { (alive && word != cur) -> cur = word }   /* CAS fails: re-decide */
       fi
  od;
  if
  :: is_op(took) -> complete(took, SUCCESS)     /* AW wake: hand_off(op) with success */
  :: else
  fi
}

/* basic_atomic_waker::start_wait (AW:200-237) for op q. */
inline async_wait(q) {
  constructed[q] = true; owner[q] = _pid;       /* AW:208-210 op allocated, constructed */
  if :: q == OPA -> a_registered = true :: else fi;
  /* AW:213 try_consume_permit (WS:137-146) */
  assert(alive);
  if
  :: atomic { word == NOTIFIED ->               /* WS:139 load sees NOTIFIED ... */
       word = EMPTY;                            /* WS:143 exchange(EMPTY, acquire) */
       assert(model_permit); model_permit = false };   /* I4: a wake stored it */
     complete(q, SUCCESS)                       /* AW:218 hand_off_new */
  :: atomic { word != NOTIFIED ->               /* WS:139 not NOTIFIED: park */
       cur = word };                            /* WS:152 park: load(relaxed) */
     do
     :: cur == NOTIFIED ->                      /* WS:155-159 */
        atomic { word = EMPTY;                  /* WS:157 exchange(EMPTY, acquire): producers */
          assert(model_permit); model_permit = false };  /* only rewrite NOTIFIED */
        complete(q, SUCCESS);                   /* AW:233-234 hand_off(o) */
        break
     :: cur != NOTIFIED ->
        if
#if MUTANT == 1
        :: atomic { true ->                     /* MUTANT 1: plain store instead of the CAS */
#else
        :: atomic { word == cur ->              /* WS:161 CAS(cur -> q) acq_rel succeeds */
#endif
             word = q;
             assert(owner[q] == _pid); owner[q] = PARKED;
             if :: is_op(cur) -> take(cur) :: else fi };
           if
           :: is_op(cur) -> complete(cur, ABORTED)   /* AW:235-236 replaced: aborted */
           :: else
           fi;
           break
        :: atomic { word != cur -> cur = word } /* WS:161 CAS fails: reload */
        fi
     od
  fi
}

/* basic_atomic_waker::cancel (AW:141-149) / a cancellation slot (AW:186-193) /
 * the destructor (AW:100) -> basic_waker_state::cancel (WS:170-180). */
inline cancel_() {
  assert(alive);
  cur = word;                                   /* WS:172 load(relaxed) */
  if
  :: is_op(cur) ->
     if
#if MUTANT == 2
     :: atomic { true -> word = EMPTY; owner[cur] = _pid };  /* MUTANT 2: plain store */
#else
     :: atomic { word == cur -> word = EMPTY; take(cur) };  /* WS:176 CAS(op -> EMPTY) */
#endif
        complete(cur, ABORTED)                  /* AW:145 hand_off_aborted */
     :: atomic { word != cur -> skip }          /* a wake took it first: returns 0 */
     fi
  :: else                                       /* nothing parked: returns 0, permit kept */
  fi
}

/* ~basic_atomic_waker (AW:98-103): cancel, then the state is gone. */
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

/* Liveness: once a wake happened while A was registered and not yet completed, A is
 * eventually completed. (Scenarios 3, 8 cancel A themselves; 5 and 6 replace it: the
 * property still holds since replacement completes A too.) */
ltl live { [] (waiting_since_wake -> <> (completions[OPA] > 0)) }
