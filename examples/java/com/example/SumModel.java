package com.example;

import ai.clipper.Model;
import java.util.ArrayList;
import java.util.List;

/**
 * The quickstart's sum model in Java: answers the sum of each input's values.
 *
 * <pre>
 * clipper model deploy sum-java --version 1 --input-type doubles \
 *   --java sdk/java/target/clipper-model-sdk-0.1.0-examples.jar:com.example.SumModel
 * </pre>
 *
 * <p>Built by sdk/java's {@code mvn install} into clipper-model-sdk-VERSION-examples.jar; a model of
 * your own compiles against clipper-model-sdk-VERSION.jar the same way.
 */
public final class SumModel implements Model<double[]> {
  @Override
  public List<String> predict(List<double[]> inputs) {
    List<String> outputs = new ArrayList<>(inputs.size());
    for (double[] values : inputs) {
      double sum = 0;
      for (double v : values) sum += v;
      outputs.add(Double.toString(sum));
    }
    return outputs;
  }
}
