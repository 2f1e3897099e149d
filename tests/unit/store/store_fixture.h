// A fresh directory per test and small helpers for reading a Store.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "store/store.h"

namespace fulcrum::store {

class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "fulcrum_store_" + std::string(info->test_suite_name()) + "_" +
                       info->name() + "_" + std::to_string(::getpid());
    std::replace(name.begin(), name.end(), '/', '_');  // typed suites: "Conformance/Sqlite"
    dir_ = std::filesystem::path(::testing::TempDir()) / name;
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // In a folder that does not exist yet: open_sqlite creates it.
  std::string path() const { return (dir_ / "state" / "fulcrum.db").string(); }

  std::unique_ptr<Store> open(const SqliteOptions& options = {}) {
    auto store = open_sqlite(path(), options);
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::filesystem::path dir_;
};

// The key exactly (range() also returns the keys it is a prefix of).
inline std::optional<KeyValue> get(Store& store, const std::string& key) {
  auto r = store.range(key);
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (!r.ok()) return std::nullopt;
  for (auto& kv : r->kvs) {
    if (kv.key == key) return kv;
  }
  return std::nullopt;
}

inline int64_t commit(Store& store, std::vector<Op> ops, int64_t expected = -1) {
  auto r = store.txn(ops, expected);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : -1;
}

}  // namespace fulcrum::store
