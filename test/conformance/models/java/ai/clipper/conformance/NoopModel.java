package ai.clipper.conformance;

import ai.clipper.Model;
import java.util.Collections;
import java.util.List;

/**
 * Answers "0" for every input without looking at it: the Java runtime's cost alone, for
 * test/conformance/runtime-overhead.ts (bench/models/noop.py and noop.ts are the other runtimes').
 */
public final class NoopModel implements Model<Object> {
  @Override
  public List<String> predict(List<Object> inputs) {
    return Collections.nCopies(inputs.size(), "0");
  }
}
