package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import clipper.common.v1.Data;
import io.grpc.StatusException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class BatchPredictorTest {
  private final ModelMetrics metrics = new ModelMetrics("m", "1");
  private final Data.Inputs batch = BatchesTest.doubles(new double[] {1, 2}, new double[] {3});

  private List<Data.Output> run(Model<double[]> model) throws StatusException {
    return new BatchPredictor(model, InputType.DOUBLES, 0, metrics).predict(batch, 7);
  }

  @Test
  void answersOneOutputPerInputInOrder() throws StatusException {
    List<Data.Output> outputs = run(inputs -> inputs.stream().map(xs -> String.valueOf(Arrays.stream(xs).sum())).toList());
    assertEquals(List.of("3.0", "3.0"), outputs.stream().map(Data.Output::getValue).toList());
  }

  @Test
  void anExceptionMakesEveryInputAnError() throws StatusException {
    List<Data.Output> outputs = run(inputs -> {
      throw new IllegalStateException("boom");
    });
    assertEquals(2, outputs.size());
    for (Data.Output o : outputs) {
      assertTrue(o.hasError());
      assertEquals("model raised java.lang.IllegalStateException: boom", o.getError());
    }
  }

  @Test
  void anErrorThatIsNotFatalToTheJvmIsAnErrorOfTheBatch() throws StatusException {
    List<Data.Output> outputs = run(inputs -> {
      throw new StackOverflowError("deep");
    });
    assertTrue(outputs.get(0).getError().contains("StackOverflowError"));
  }

  @Test
  void aListOfTheWrongSizeMakesEveryInputAnError() throws StatusException {
    List<Data.Output> outputs = run(inputs -> List.of("only one"));
    assertEquals(2, outputs.size());
    assertEquals("model returned 1 outputs for 2 inputs", outputs.get(1).getError());
    assertEquals("model returned null, expected a list of 2 strings", run(inputs -> null).get(0).getError());
  }

  @Test
  void aNullOrNonStringElementIsAnErrorOfThatInputAlone() throws StatusException {
    List<String> withNull = new ArrayList<>(Arrays.asList("ok", null));
    List<Data.Output> outputs = run(inputs -> withNull);
    assertEquals("ok", outputs.get(0).getValue());
    assertEquals("output 1 is null, expected a String", outputs.get(1).getError());
    @SuppressWarnings({"unchecked", "rawtypes"})
    Model<double[]> raw = inputs -> (List) List.of(1, "two");
    List<Data.Output> mixed = run(raw);
    assertEquals("output 0 is java.lang.Integer, expected a String", mixed.get(0).getError());
    assertEquals("two", mixed.get(1).getValue());
  }

  @Test
  void countsBatchesInputsAndOutcomes() throws StatusException {
    run(inputs -> Arrays.asList("a", null));
    run(inputs -> {
      throw new RuntimeException("x");
    });
    StringBuilder text = new StringBuilder();
    metrics.write(text);
    String out = text.toString();
    assertTrue(out.contains("clipper_model_requests_total{model=\"m\",version=\"1\",outcome=\"ok\"} 1"), out);
    assertTrue(out.contains("clipper_model_requests_total{model=\"m\",version=\"1\",outcome=\"model_error\"} 1"), out);
    assertTrue(out.contains("clipper_model_inputs_total{model=\"m\",version=\"1\",outcome=\"ok\"} 1"), out);
    assertTrue(out.contains("clipper_model_inputs_total{model=\"m\",version=\"1\",outcome=\"error\"} 3"), out);
    assertTrue(out.contains("clipper_model_batch_size_bucket{model=\"m\",version=\"1\",le=\"2\"} 2"), out);
    assertTrue(out.contains("clipper_model_batch_size_count{model=\"m\",version=\"1\"} 2"), out);
    assertTrue(out.contains("# TYPE clipper_model_predict_duration_seconds histogram"), out);
  }
}
