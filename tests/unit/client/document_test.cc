#include "document.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace fulcrum::ctl {
namespace {

Json from_yaml(const std::string& text) {
  auto j = yaml_to_json(YAML::Load(text));
  EXPECT_TRUE(j.ok()) << j.error().to_string();
  return j.ok() ? *j : Json();
}

TEST(YamlToJson, CoreSchemaScalars) {
  Json j = from_yaml(
      "a: 80\nb: -3\nc: 0.5\nd: true\ne: False\nf: ~\ng:\nh: \"80\"\ni: '1.5'\nj: 2s\n"
      "k: 127.0.0.1\nl: 0x1F\nm: 0o17\nn: 1e3\no: .inf\np: !!str 12\nq: yes\n");
  EXPECT_EQ(j["a"], 80);
  EXPECT_EQ(j["b"], -3);
  EXPECT_EQ(j["c"], 0.5);
  EXPECT_EQ(j["d"], true);
  EXPECT_EQ(j["e"], false);
  EXPECT_TRUE(j["f"].is_null());
  EXPECT_TRUE(j["g"].is_null());
  EXPECT_EQ(j["h"], "80");
  EXPECT_EQ(j["i"], "1.5");
  EXPECT_EQ(j["j"], "2s");
  EXPECT_EQ(j["k"], "127.0.0.1");
  EXPECT_EQ(j["l"], 31);
  EXPECT_EQ(j["m"], 15);
  EXPECT_EQ(j["n"], 1000.0);
  EXPECT_EQ(j["o"], ".inf");
  EXPECT_EQ(j["p"], "12");
  EXPECT_EQ(j["q"], "yes");  // YAML 1.1 booleans are strings in 1.2
}

TEST(YamlToJson, KeepsOrderAndStructure) {
  Json j = from_yaml("z: [1, {b: 2, a: 3}]\ny: {}\nx: []\n");
  EXPECT_EQ(j.dump(), R"({"z":[1,{"b":2,"a":3}],"y":{},"x":[]})");
}

TEST(YamlToJson, DuplicateKeyAndHugeNumberNameThePath) {
  auto dup = yaml_to_json(YAML::Load("lbs:\n  - {name: a, name: b}\n"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().field, "lbs[0].name");
  auto big = yaml_to_json(YAML::Load("a: {port: 99999999999999999999999}\n"));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().field, "a.port");
}

TEST(ToYaml, RoundTripsThroughYamlToJson) {
  Json j = Json::parse(R"({
    "name": "web", "port": 8080, "weight": 0.5, "enabled": false, "none": null,
    "quoted": ["80", "true", "null", "", "~", "1e3", ".inf", "0x10"],
    "odd": "a: b # c", "star": "*.example.com", "dash": "-", "utf8": "0–100",
    "pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "two_lines_no_end": "a\nb", "empty_obj": {}, "empty_list": [],
    "nested": [{"a": [1, 2]}, [3]]
  })");
  std::string text = to_yaml(j);
  Json back = from_yaml(text);
  EXPECT_EQ(back, j) << text;
  EXPECT_NE(text.find("name: web\n"), std::string::npos) << text;
  EXPECT_NE(text.find("pem: |\n"), std::string::npos) << text;
}

class LoadDocument : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fulcrumctl-doc-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/conf/certs");
    write("conf/certs/web.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    write("conf/certs/web.key", "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  std::string dir_;
};

TEST_F(LoadDocument, YamlWithoutCertificateFilesIsSentVerbatim) {
  std::string text = "# comment kept\nloadbalancers:\n  - {name: web, address: 127.0.0.1}\n";
  auto doc = load_document(write("conf/lb.yaml", text), Shape::kDocument);
  ASSERT_TRUE(doc.ok()) << doc.error().to_string();
  EXPECT_TRUE(doc->yaml);
  EXPECT_EQ(doc->content_type, "application/yaml");
  EXPECT_EQ(doc->body, text);
  EXPECT_EQ(doc->json["loadbalancers"][0]["address"], "127.0.0.1");
}

TEST_F(LoadDocument, YamlCertificateFilesAreInlinedRelativeToTheFile) {
  std::string path = write("conf/lb.yaml",
                           "certificates:\n"
                           "  - {name: web, type: server, cert_file: certs/web.pem, "
                           "key_file: certs/web.key}\n"
                           "loadbalancers:\n  - {name: web, address: 127.0.0.1, "
                           "tags: {build: \"42\"}}\n");
  auto doc = load_document(path, Shape::kDocument);
  ASSERT_TRUE(doc.ok()) << doc.error().to_string();
  const Json& cert = doc->json["certificates"][0];
  EXPECT_FALSE(cert.contains("cert_file"));
  EXPECT_FALSE(cert.contains("key_file"));
  EXPECT_EQ(cert["cert"], "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(cert["key"], "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n");
  EXPECT_EQ(doc->content_type, "application/yaml");
  // The re-emitted YAML says the same thing, quoted strings included.
  EXPECT_EQ(from_yaml(doc->body), doc->json) << doc->body;
  EXPECT_EQ(doc->json["loadbalancers"][0]["tags"]["build"], "42");
}

TEST_F(LoadDocument, JsonCertificateFilesAreInlined) {
  std::string path = write("conf/doc.json",
                           R"({"certificates": [{"name": "web", "cert_file": "certs/web.pem",
                               "key_file": ")" +
                               dir_ + R"(/conf/certs/web.key"}]})");
  auto doc = load_document(path, Shape::kDocument);
  ASSERT_TRUE(doc.ok()) << doc.error().to_string();
  EXPECT_FALSE(doc->yaml);
  EXPECT_EQ(doc->content_type, "application/json");
  Json sent = Json::parse(doc->body);
  EXPECT_EQ(sent["certificates"][0]["cert"].get<std::string>().substr(0, 11), "-----BEGIN ");
  EXPECT_TRUE(sent["certificates"][0].contains("key"));  // from the absolute path
}

TEST_F(LoadDocument, SingleCertificateObject) {
  auto doc = load_document(write("conf/cert.yaml", "name: web\ncert_file: certs/web.pem\n"),
                           Shape::kCertificate);
  ASSERT_TRUE(doc.ok()) << doc.error().to_string();
  EXPECT_TRUE(doc->json.contains("cert"));
  // Other shapes leave file names alone.
  auto plain = load_document(dir_ + "/conf/cert.yaml", Shape::kObject);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->json["cert_file"], "certs/web.pem");
}

TEST_F(LoadDocument, FormatIsSniffedWithoutExtension) {
  auto json = load_document(write("conf/obj", "  {\"name\": \"x\"}"), Shape::kObject);
  ASSERT_TRUE(json.ok());
  EXPECT_FALSE(json->yaml);
  auto yaml = load_document(write("conf/obj2", "name: x\n"), Shape::kObject);
  ASSERT_TRUE(yaml.ok());
  EXPECT_TRUE(yaml->yaml);
  EXPECT_EQ(yaml->json["name"], "x");
}

TEST_F(LoadDocument, ErrorsNameTheFileLineOrField) {
  auto missing = load_document(dir_ + "/nope.yaml", Shape::kDocument);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("nope.yaml"), std::string::npos);

  auto syntax = load_document(write("conf/bad.yaml", "a: [1, 2\nb: 3\n"), Shape::kDocument);
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.error().message.find("bad.yaml:"), std::string::npos) << syntax.error().message;

  auto bad_json = load_document(write("conf/bad.json", "{\"a\": }"), Shape::kDocument);
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(bad_json.error().message.find("bad.json"), std::string::npos);

  auto no_pem = load_document(
      write("conf/nopem.yaml", "certificates:\n  - {name: a}\n  - {name: b, cert_file: x.pem}\n"),
      Shape::kDocument);
  ASSERT_FALSE(no_pem.ok());
  EXPECT_EQ(no_pem.error().field, "certificates[1].cert_file");
  EXPECT_NE(no_pem.error().message.find("x.pem"), std::string::npos);
}

// The server's bounds, applied before the tree is expanded into JSON (docs/configuration.md).
TEST_F(LoadDocument, BillionLaughsAndHugeDocumentsAreRefusedBeforeExpansion) {
  std::string laughs =
      "loadbalancers:\n"
      "  - &lb\n"
      "    name: lb\n"
      "    server_groups:\n"
      "      - &sg\n"
      "        name: g\n"
      "        backends:\n"
      "          - &be {address: 10.0.0.1, port: 80}\n";
  for (int i = 0; i < 999; ++i) laughs += "          - *be\n";
  for (int i = 0; i < 999; ++i) laughs += "      - *sg\n";
  for (int i = 0; i < 999; ++i) laughs += "  - *lb\n";
  std::string path = write("laughs.yaml", laughs);
  auto doc = load_document(path, Shape::kDocument);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().to_string(),
            path + ": document too large (more than 1000000 values; an alias counts at each use)");

  std::string text =
      "loadbalancers:\n  - &lb {name: lb, tags: {k: " + std::string(1 << 20, 'x') + "}}\n";
  for (int i = 0; i < 19; ++i) text += "  - *lb\n";
  auto j = yaml_to_json(YAML::Load(text));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().to_string(),
            "document too large (more than 16 MiB of text; an alias counts at each use)");

  std::string nodes = "acls: [";
  for (int i = 0; i < 1'000'000; ++i) nodes += "1,";
  path = write("nodes.yaml", nodes + "1]\n");
  doc = load_document(path, Shape::kDocument);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().to_string(), path + ": document too large (more than 1000000 YAML nodes)");

  path = write("large.json", "[" + std::string(16 << 20, ' ') + "]");
  doc = load_document(path, Shape::kDocument);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().to_string(), path + ": document too large (more than 16 MiB)");
}

}  // namespace
}  // namespace fulcrum::ctl
