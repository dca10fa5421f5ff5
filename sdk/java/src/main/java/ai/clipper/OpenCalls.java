package ai.clipper;

import io.grpc.Metadata;
import io.grpc.ServerStreamTracer;
import io.grpc.Status;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Counts the server's open calls (a stream tracer sees each call's start and end). A stopping
 * server waits for this count to reach zero and then closes its connections at once: waiting for
 * grpc-java's own termination instead also waits for every client to close its connection, and a
 * client that was refused an oversized message may hold its stream half-open until the grace ends.
 */
final class OpenCalls extends ServerStreamTracer.Factory {
  private int open;

  @Override
  public ServerStreamTracer newServerStreamTracer(String fullMethodName, Metadata headers) {
    synchronized (this) {
      open++;
    }
    AtomicBoolean closed = new AtomicBoolean();
    return new ServerStreamTracer() {
      @Override
      public void streamClosed(Status status) {
        if (closed.compareAndSet(false, true)) ended();
      }
    };
  }

  private synchronized void ended() {
    open--;
    if (open == 0) notifyAll();
  }

  synchronized int open() {
    return open;
  }

  /** Waits until no call is open; returns false when `nanos` passed first. */
  synchronized boolean awaitNone(long nanos) throws InterruptedException {
    long deadline = System.nanoTime() + nanos;
    while (open > 0) {
      long left = deadline - System.nanoTime();
      if (left <= 0) return false;
      TimeUnit.NANOSECONDS.timedWait(this, left);
    }
    return true;
  }
}
