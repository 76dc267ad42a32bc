/*
 * test/proofs/channel.pml -- Promela model of asio_waker's channel handshake, checked with
 * spin.
 *
 * What it models, each step commented with the C++ function it mirrors:
 *   the queue's words (include/asio_waker/detail/channel_queue.hpp): the claim
 *     (tail_.fetch_add), the publication (slot state store), close (tail_.fetch_or, then
 *     the close_index_ store, two steps), peek (slot state, then close_index_, then
 *     tail_: three loads);
 *   the moves of include/asio_waker/detail/channel_state.hpp (channel_moves): send,
 *     notify (the seq_cst load of the waiter word, handoffs, the CAS, the hand-off),
 *     close, start_receive (peek, park with an exchange, the seq_cst re-check, taking
 *     the op back), take_and_abort, detach (the receiver's end);
 *   receive_completion::operator() (channel_service.hpp): a completed receive takes a
 *     value, or sees eof, or parks again when it finds nothing.
 * The scheduler is the channel `runq`; the consumer process runs it (io_context::run on
 * one thread) and is the receiver. Blocks are not modelled (one slot per index): their
 * lifetime is checked by the C++ interleaving checker, which runs the real queue.
 * Memory model: sequential consistency, which is what the seq_cst operations of the
 * handshake give (the argument is in channel_queue.hpp; the weak-memory checks are the
 * checker's and TSan's).
 *
 * Scenarios (spin -DSCENARIO=n): every one has 2 producers x 2 values.
 *   1 the last sender's drop closes; receive until eof
 *   2 the receiver closes after its first value, racing the sends
 *   3 the receiver cancels a parked receive, then receives until eof
 *   4 the receiver is destroyed with a receive pending, after its first value, racing
 *     the sends
 *   5 the senders stay: receive the 4 values (no close whose notify could mask a lost
 *     wake)
 * Invariants (assertions): each accepted value is received exactly once (I1), in its
 * producer's order (I2); eof only after every accepted value (I3); a completed receive
 * is the current one or an aborted one (I4); no sender hands a receive to the scheduler
 * after the receiver's end has returned (I5). A lost wake leaves the consumer blocked on
 * the run queue: an invalid end state. Liveness (LTL `live`): the consumer eventually
 * finishes, under weak fairness.
 *
 * Mutants (-DMUTANT=n, each must be caught; ci.sh checks):
 *   1 send skips notify      2 start_receive skips the re-check after parking
 *   3 detach does not wait for handoffs   4 peek reports eof as soon as CLOSED is set
 *     (close drops the values still queued)
 */

#ifndef SCENARIO
#define SCENARIO 1
#endif
#ifndef MUTANT
#define MUTANT 0
#endif

#define NP 2
#define NV 2
#define NIDX 8          /* indices: 4 values, failed claims after close, slack */

#define EMPTY_SLOT 0
#define VALUE 1
#define ENDED 2
#define NOTHING 3

#define SUCCESS 0
#define ABORTED 1

byte slot[NIDX];        /* 0, or the value (producer * NV + seq + 1) */
byte tail = 0;          /* tail_ >> 1 */
bool closed = false;    /* tail_ & CLOSED */
byte close_index = 255; /* close_index_ */
byte waiter = 0;        /* basic_channel_core::waiter: 0 or a receive's id */
byte handoffs = 0;
byte senders = NP;
bool gone = false;      /* the receiver's end (detach) has returned */

chan runq = [8] of { byte, byte };   /* the scheduler's queue: receive id, error */

byte accepted[NP];      /* values each producer's sends returned true for */
byte received[NP * NV + 1];
byte last_seq[NP];      /* 1 + seq of the last value received per producer */
byte head = 0;          /* the consumer's head_ */
bool consumer_done = false;

/* channel_moves::notify */
inline notify() {
  cur = waiter;                                  /* waiter.load(seq_cst) */
  if
  :: cur != 0 ->
     handoffs++;                                 /* handoffs.fetch_add(1) */
     atomic {                                    /* waiter CAS(cur -> 0) */
       if
       :: waiter == cur -> waiter = 0; took = true
       :: else -> took = false
       fi }
     if
     :: took -> assert(!gone); runq!cur,SUCCESS   /* I5; post_deferred */
     :: else
     fi;
     handoffs--                                  /* handoffs.fetch_sub(1) */
  :: else
  fi
}

/* basic_channel_queue::close, then notify (channel_moves::close) */
inline close_() {
  atomic {                                       /* tail_.fetch_or(CLOSED) */
    if
    :: !closed -> closed = true; mine = true; c = tail
    :: else -> mine = false
    fi }
  if
  :: mine -> close_index = c                     /* close_index_.store(old >> 1) */
  :: else
  fi
}

proctype producer(byte p) {
  byte i, idx, cur, c;
  bool ok, took, mine, last;
  for (i : 0 .. NV - 1) {
    atomic {                                     /* emplace: tail_.fetch_add(2) */
      ok = !closed; idx = tail; tail++ }
    if
    :: ok ->
       atomic {                                  /* state.store(READY, seq_cst) */
         slot[idx] = p * NV + i + 1; accepted[p]++ };
#if MUTANT != 1
       notify()                                  /* channel_moves::send */
#endif
    :: else                                      /* send returns false */
    fi
  }
#if SCENARIO != 5
  /* ~sender: the last one closes */
  atomic { senders--; last = (senders == 0) }
  if
  :: last -> close_(); notify()
  :: else
  fi
#endif
}

/* basic_channel_queue::peek: the slot, then close_index_ (each one load) */
inline peek(st) {
  if
  :: slot[head] != EMPTY_SLOT -> st = VALUE
  :: else ->
#if MUTANT == 4
     if
     :: closed -> st = ENDED
     :: else -> st = NOTHING
     fi
#else
     if
     :: close_index == head -> st = ENDED
     :: else -> st = NOTHING                     /* empty, or busy */
     fi
#endif
  fi
}

/* channel_moves::take_and_abort */
inline take_and_abort() {
  cur = waiter;
  if
  :: cur != 0 ->
     atomic {
       if
       :: waiter == cur -> waiter = 0; took = true
       :: else -> took = false
       fi }
     if
     :: took -> runq!cur,ABORTED                 /* post_aborted */
     :: else
     fi
  :: else
  fi
}

/* channel_moves::start_receive for receive `op` */
inline start_receive() {
  op++;
  peek(st);
  if
  :: st != NOTHING ->
     take_and_abort();
     runq!op,SUCCESS                             /* post_immediate */
  :: else ->
     atomic { cur = waiter; waiter = op };       /* waiter.exchange(op, seq_cst) */
     if
     :: cur != 0 -> runq!cur,ABORTED             /* the replaced receive */
     :: else
     fi;
#if MUTANT != 2
     peek(st);                                   /* the seq_cst re-check */
     if
     :: st != NOTHING ->
        atomic {
          if
          :: waiter == op -> waiter = 0; took = true
          :: else -> took = false
          fi }
        if
        :: took -> runq!op,SUCCESS               /* post_deferred */
        :: else
        fi
     :: else
     fi
#endif
  fi
}

/* channel_moves::detach(receiver_gone): abort, close, wait for hand-offs */
inline detach() {
  take_and_abort();
  close_();
#if MUTANT != 3
  handoffs == 0;                                 /* while (handoffs) yield() */
#endif
  gone = true
}

proctype consumer() {
  byte op = 0, cur, ec, st, v, c, values = 0;
  bool took, mine;
  start_receive();
  do
  :: runq?cur,ec ->                              /* the scheduler runs a completion */
     if
     :: ec == ABORTED -> assert(cur < op)        /* I4: an earlier receive, aborted */
     :: else
     fi;
     if
     :: ec == ABORTED -> skip                    /* it took nothing */
     :: else ->
        assert(cur == op);                       /* I4 */
        peek(st);                                /* receive_completion: take values here */
        if
        :: st == VALUE ->
           v = slot[head]; head++;
           received[v]++;
           assert(received[v] == 1);             /* I1 */
           assert((v - 1) % NV + 1 > last_seq[(v - 1) / NV]);   /* I2 */
           last_seq[(v - 1) / NV] = (v - 1) % NV + 1;
           values++;
#if SCENARIO == 2
           if :: values == 1 -> close_(); notify() :: else fi;
#elif SCENARIO == 4
           if :: values == 1 -> start_receive(); detach(); break :: else fi;
#elif SCENARIO == 5
           if :: values == NP * NV -> break :: else fi;
#endif
           start_receive()
        :: st == ENDED ->
           /* I3: every accepted value was received */
           assert(last_seq[0] == accepted[0] && last_seq[1] == accepted[1]);
           break
        :: st == NOTHING -> start_receive()       /* park again */
        fi
     fi
#if SCENARIO == 3
  :: op == 1 && waiter == op ->                  /* cancel() the parked first receive */
     atomic {
       if
       :: waiter == op -> waiter = 0; took = true
       :: else -> took = false
       fi }
     if
     :: took -> runq!op,ABORTED; start_receive()
     :: else
     fi
#endif
  od;
  consumer_done = true
}

init {
  atomic {
    run consumer();
    run producer(0);
    run producer(1)
  }
}

ltl live { <> consumer_done }
