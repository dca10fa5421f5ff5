package ai.clipper;

import java.lang.reflect.Proxy;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Logger;

/**
 * SIGTERM and SIGINT for a model container: the container-manager stops a replica with SIGTERM and
 * expects batches in flight to be answered. With {@code sun.misc.Signal} (module jdk.unsupported, in
 * every OpenJDK; reached by reflection so the build has no warning about it) the first signal stops
 * the server and the process exits 0, a second one exits 1 at once. Without it a shutdown hook does
 * the same work and the JVM exits 143, as any JVM does on SIGTERM.
 */
final class Signals {
  private static final Logger log = Logger.getLogger("ai.clipper");

  private Signals() {}

  static void onTermination(Runnable stop) {
    AtomicBoolean stopping = new AtomicBoolean();
    try {
      Class<?> signalClass = Class.forName("sun.misc.Signal");
      Class<?> handlerClass = Class.forName("sun.misc.SignalHandler");
      Object handler = Proxy.newProxyInstance(Signals.class.getClassLoader(), new Class<?>[] {handlerClass},
          (proxy, method, args) -> {
            switch (method.getName()) {
              case "handle":
                if (!stopping.compareAndSet(false, true)) {
                  log.warning("a second signal: exiting now");
                  Runtime.getRuntime().halt(1);
                }
                // A thread of its own: the signal's thread must not wait for batches to finish.
                new Thread(() -> {
                  stop.run();
                  System.exit(0);
                }, "clipper-stop").start();
                return null;
              case "hashCode":
                return System.identityHashCode(proxy);
              case "equals":
                return proxy == args[0];
              default:
                return "clipper termination handler";
            }
          });
      for (String name : new String[] {"TERM", "INT"}) {
        Object signal = signalClass.getConstructor(String.class).newInstance(name);
        signalClass.getMethod("handle", signalClass, handlerClass).invoke(null, signal, handler);
      }
    } catch (ReflectiveOperationException | LinkageError | SecurityException | IllegalArgumentException e) {
      log.fine("sun.misc.Signal is not available (" + e + "): stopping from a shutdown hook");
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        if (stopping.compareAndSet(false, true)) stop.run();
      }, "clipper-stop"));
    }
  }
}
