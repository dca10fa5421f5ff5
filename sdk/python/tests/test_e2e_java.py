"""deploy_java_model against the real system (`clipper up`), run with
CLIPPER_E2E=1; it uses the jars sdk/java's `mvn install` built, and is
skipped when they are missing unless CLIPPER_JAVA_TESTS=1."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from conftest import local_clipper
from test_e2e_quickstart import query, query_until_answered

from clipper.v1 import resources_pb2
from clipper_admin import ClipperException
from clipper_admin.deployers import java as java_deployer

REPO = Path(__file__).resolve().parents[3]
TARGET = REPO / "sdk" / "java" / "target"
SDK_JAR = TARGET / "clipper-model-sdk-0.1.0-all.jar"
EXAMPLES_JAR = TARGET / "clipper-model-sdk-0.1.0-examples.jar"
MISSING = [str(jar) for jar in (SDK_JAR, EXAMPLES_JAR) if not jar.is_file()]
JAVA_REQUIRED = os.environ.get("CLIPPER_JAVA_TESTS") == "1"


def test_refuses_a_bad_class_name_a_missing_jar_a_non_jar_and_a_class_not_in_the_jar(tmp_path):
    with pytest.raises(ClipperException, match=r"class_name must be a fully qualified Java class name .*'com/x/Y"):
        java_deployer.read_model_jar(tmp_path / "a.jar", "com/x/Y.class")
    with pytest.raises(ClipperException, match=r"jar_path .*missing.jar' is not a file"):
        java_deployer.read_model_jar(tmp_path / "missing.jar", "com.x.Y")
    text = tmp_path / "text.jar"
    text.write_text("not a zip")
    with pytest.raises(ClipperException, match=r"text.jar' is not a jar"):
        java_deployer.read_model_jar(text, "com.x.Y")
    jar = tmp_path / "model.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("com/x/Y.class", b"\xca\xfe\xba\xbe")
    assert java_deployer.read_model_jar(jar, "com.x.Y") == jar.read_bytes()
    with pytest.raises(ClipperException, match=r"has no class com.x.Z \(no entry com/x/Z.class\)"):
        java_deployer.read_model_jar(jar, "com.x.Z")


e2e = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")
jars = pytest.mark.skipif(
    bool(MISSING) and not JAVA_REQUIRED,
    reason=f"{', '.join(MISSING)} missing: cd sdk/java && mvn install (CLIPPER_JAVA_TESTS=1 makes this a failure)",
)


@pytest.fixture
def conn(tmp_path):
    assert not MISSING, f"the jars of `cd sdk/java && mvn install` are missing: {', '.join(MISSING)}"
    with local_clipper(tmp_path / "clipper-data") as connection:
        yield connection


@e2e
@jars
def test_deploy_java_model(conn):
    conn.register_application(name="sum-java", input_type="doubles", default_output="-1.0", slo_micros=5000000)
    java_deployer.deploy_java_model(
        conn,
        name="sum-java",
        version=1,
        input_type="doubles",
        jar_path=EXAMPLES_JAR,
        class_name="com.example.SumModel",
        jvm_options=["-Xmx128m"],
        timeout_seconds=90,
    )
    conn.link_model_to_app(app_name="sum-java", model_name="sum-java")
    answer = query_until_answered(conn.get_query_addr(), "sum-java", [1.5, 2.25, 3.0])
    assert answer["output"] == 6.75
    assert answer["models"] == ["sum-java:1"]
    assert query(conn.get_query_addr(), "sum-java", [-4.0, 14.0])["output"] == 10.0

    # Same version, same jar: a re-run changes nothing; another class under that version is refused, naming it.
    java_deployer.deploy_java_model(
        conn, "sum-java", 1, "doubles", EXAMPLES_JAR, "com.example.SumModel", jvm_options=["-Xmx128m"]
    )
    digest = conn.upload_artifact(EXAMPLES_JAR.read_bytes())
    other = resources_pb2.JavaClassRuntime(jar_digest=digest, class_name="com.example.Other", jvm_options=["-Xmx128m"])
    with pytest.raises(ClipperException, match=r'class_name is "com.example.SumModel", requested "com.example.Other"'):
        conn.deploy_model("sum-java", 1, "doubles", other)


@e2e
@jars
def test_create_endpoint(conn):
    java_deployer.create_endpoint(
        conn, "sum-endpoint", "doubles", EXAMPLES_JAR, "com.example.SumModel", default_output="-1", slo_micros=5000000
    )
    assert conn.get_linked_models("sum-endpoint") == ["sum-endpoint"]
    answer = query_until_answered(conn.get_query_addr(), "sum-endpoint", [0.5, 0.25])
    assert answer["output"] == 0.75
