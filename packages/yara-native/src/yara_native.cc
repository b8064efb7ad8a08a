// A small N-API binding over Debian's libyara (4.x): compile rules with namespaces and
// external variables, and scan buffers or files on the libuv thread pool (never on the event
// loop) with libyara's own per-scan timeout. Used by @engine/yara's "native" engine.
#include <fcntl.h>
#include <node_api.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yara.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, nullptr, "yara-native: N-API call failed"); \
      return nullptr;                                                 \
    }                                                                 \
  } while (0)

struct External {
  std::string name;
  int kind;  // 0 string, 1 integer, 2 float, 3 boolean
  std::string text;
  int64_t integer = 0;
  double number = 0;
  bool boolean = false;
};

struct RulesHolder {
  YR_RULES* rules = nullptr;
  std::atomic<int> references{1};
  void release() {
    if (--references == 0) {
      if (rules) yr_rules_destroy(rules);
      delete this;
    }
  }
};

struct Diagnostic {
  int index;
  int level;
  int line;
  std::string message;
};

struct Match {
  std::string ns;
  std::string identifier;
  std::vector<std::string> tags;
  std::vector<External> metas;
};

std::string get_string(napi_env env, napi_value value) {
  size_t length = 0;
  napi_get_value_string_utf8(env, value, nullptr, 0, &length);
  std::string result(length, '\0');
  napi_get_value_string_utf8(env, value, result.data(), length + 1, &length);
  return result;
}

bool read_externals(napi_env env, napi_value object, std::vector<External>* out) {
  napi_valuetype type;
  napi_typeof(env, object, &type);
  if (type != napi_object) return true;
  napi_value names;
  if (napi_get_property_names(env, object, &names) != napi_ok) return false;
  uint32_t count = 0;
  napi_get_array_length(env, names, &count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value key, value;
    napi_get_element(env, names, i, &key);
    napi_get_property(env, object, key, &value);
    External external;
    external.name = get_string(env, key);
    napi_valuetype value_type;
    napi_typeof(env, value, &value_type);
    if (value_type == napi_string) {
      external.kind = 0;
      external.text = get_string(env, value);
    } else if (value_type == napi_number) {
      double number;
      napi_get_value_double(env, value, &number);
      if (std::floor(number) == number && std::fabs(number) < 9.0e15) {
        external.kind = 1;
        external.integer = static_cast<int64_t>(number);
      } else {
        external.kind = 2;
        external.number = number;
      }
    } else if (value_type == napi_boolean) {
      external.kind = 3;
      napi_get_value_bool(env, value, &external.boolean);
    } else {
      continue;
    }
    out->push_back(external);
  }
  return true;
}

void define_on_compiler(YR_COMPILER* compiler, const std::vector<External>& externals) {
  for (const auto& e : externals) {
    switch (e.kind) {
      case 0: yr_compiler_define_string_variable(compiler, e.name.c_str(), e.text.c_str()); break;
      case 1: yr_compiler_define_integer_variable(compiler, e.name.c_str(), e.integer); break;
      case 2: yr_compiler_define_float_variable(compiler, e.name.c_str(), e.number); break;
      case 3: yr_compiler_define_boolean_variable(compiler, e.name.c_str(), e.boolean ? 1 : 0); break;
    }
  }
}

// ---- compile ------------------------------------------------------------------------------

struct CompileWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<std::string> namespaces;
  std::vector<std::string> sources;
  std::vector<External> externals;
  bool validate = true;
  std::vector<int> accepted;
  std::vector<Diagnostic> diagnostics;
  RulesHolder* holder = nullptr;
  std::string failure;
  int current_index = 0;
};

void compiler_callback(int level, const char*, int line, const YR_RULE*, const char* message, void* user_data) {
  auto* work = static_cast<CompileWork*>(user_data);
  work->diagnostics.push_back({work->current_index, level, line, message ? message : ""});
}

// Every `include` reaches libyara already inlined by @engine/yara, which reads only regular files
// within its limits. libyara's own include reading (a blocking open(2): a FIFO would hold this
// thread of the pool, and the process's exit, for good; no bound on size or count) is switched
// off: an `include` left in a source is the compile error "includes are disabled".
void disable_includes(YR_COMPILER* compiler) {
  yr_compiler_set_include_callback(compiler, nullptr, nullptr, nullptr);
}

void compile_execute(napi_env, void* data) {
  auto* work = static_cast<CompileWork*>(data);
  if (work->validate) {
    for (size_t i = 0; i < work->sources.size(); i++) {
      YR_COMPILER* compiler = nullptr;
      if (yr_compiler_create(&compiler) != ERROR_SUCCESS) {
        work->failure = "cannot create a YARA compiler";
        return;
      }
      work->current_index = static_cast<int>(i);
      disable_includes(compiler);
      yr_compiler_set_callback(compiler, compiler_callback, work);
      define_on_compiler(compiler, work->externals);
      if (yr_compiler_add_string(compiler, work->sources[i].c_str(), work->namespaces[i].c_str()) == 0) {
        work->accepted.push_back(static_cast<int>(i));
      }
      yr_compiler_destroy(compiler);
    }
  } else {
    for (size_t i = 0; i < work->sources.size(); i++) work->accepted.push_back(static_cast<int>(i));
  }
  if (work->accepted.empty()) return;
  YR_COMPILER* compiler = nullptr;
  if (yr_compiler_create(&compiler) != ERROR_SUCCESS) {
    work->failure = "cannot create a YARA compiler";
    return;
  }
  std::vector<Diagnostic> ignored;
  disable_includes(compiler);
  define_on_compiler(compiler, work->externals);
  for (int index : work->accepted) {
    work->current_index = index;
    if (!work->validate) yr_compiler_set_callback(compiler, compiler_callback, work);
    if (yr_compiler_add_string(compiler, work->sources[index].c_str(), work->namespaces[index].c_str()) != 0) {
      work->failure = "a rule file failed in the final compilation";
      yr_compiler_destroy(compiler);
      return;
    }
  }
  YR_RULES* rules = nullptr;
  if (yr_compiler_get_rules(compiler, &rules) != ERROR_SUCCESS) {
    work->failure = "yr_compiler_get_rules failed";
    yr_compiler_destroy(compiler);
    return;
  }
  yr_compiler_destroy(compiler);
  work->holder = new RulesHolder();
  work->holder->rules = rules;
}

void finalize_holder(napi_env, void* data, void*) { static_cast<RulesHolder*>(data)->release(); }

void compile_complete(napi_env env, napi_status, void* data) {
  auto* work = static_cast<CompileWork*>(data);
  if (!work->failure.empty()) {
    napi_value message, error;
    napi_create_string_utf8(env, work->failure.c_str(), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, nullptr, message, &error);
    napi_reject_deferred(env, work->deferred, error);
  } else {
    napi_value result, accepted, diagnostics;
    napi_create_object(env, &result);
    napi_create_array_with_length(env, work->accepted.size(), &accepted);
    for (size_t i = 0; i < work->accepted.size(); i++) {
      napi_value value;
      napi_create_int32(env, work->accepted[i], &value);
      napi_set_element(env, accepted, static_cast<uint32_t>(i), value);
    }
    napi_set_named_property(env, result, "accepted", accepted);
    napi_create_array_with_length(env, work->diagnostics.size(), &diagnostics);
    for (size_t i = 0; i < work->diagnostics.size(); i++) {
      const auto& d = work->diagnostics[i];
      napi_value entry, index, level, line, message;
      napi_create_object(env, &entry);
      napi_create_int32(env, d.index, &index);
      napi_create_int32(env, d.level, &level);
      napi_create_int32(env, d.line, &line);
      napi_create_string_utf8(env, d.message.c_str(), NAPI_AUTO_LENGTH, &message);
      napi_set_named_property(env, entry, "index", index);
      napi_set_named_property(env, entry, "level", level);
      napi_set_named_property(env, entry, "line", line);
      napi_set_named_property(env, entry, "message", message);
      napi_set_element(env, diagnostics, static_cast<uint32_t>(i), entry);
    }
    napi_set_named_property(env, result, "diagnostics", diagnostics);
    if (work->holder) {
      napi_value handle;
      napi_create_external(env, work->holder, finalize_holder, nullptr, &handle);
      napi_set_named_property(env, result, "rules", handle);
    }
    napi_resolve_deferred(env, work->deferred, result);
  }
  napi_delete_async_work(env, work->work);
  delete work;
}

// compile(namespaces: string[], sources: string[], externals: object, validate: boolean): Promise
napi_value Compile(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  auto* work = new CompileWork();
  uint32_t count = 0;
  napi_get_array_length(env, argv[1], &count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value ns, source;
    napi_get_element(env, argv[0], i, &ns);
    napi_get_element(env, argv[1], i, &source);
    work->namespaces.push_back(get_string(env, ns));
    work->sources.push_back(get_string(env, source));
  }
  read_externals(env, argv[2], &work->externals);
  napi_get_value_bool(env, argv[3], &work->validate);
  napi_value promise, name;
  CHECK(napi_create_promise(env, &work->deferred, &promise));
  napi_create_string_utf8(env, "yara-compile", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_create_async_work(env, nullptr, name, compile_execute, compile_complete, work, &work->work));
  CHECK(napi_queue_async_work(env, work->work));
  return promise;
}

// ---- scan ---------------------------------------------------------------------------------

struct ScanWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref buffer_ref = nullptr;
  RulesHolder* holder = nullptr;
  const uint8_t* data = nullptr;
  size_t length = 0;
  std::string path;
  bool use_path = false;
  std::vector<External> externals;
  int timeout_seconds = 0;
  int result = ERROR_SUCCESS;
  std::vector<Match> matches;
};

int scan_callback(YR_SCAN_CONTEXT*, int message, void* message_data, void* user_data) {
  if (message != CALLBACK_MSG_RULE_MATCHING) return CALLBACK_CONTINUE;
  auto* work = static_cast<ScanWork*>(user_data);
  auto* rule = static_cast<YR_RULE*>(message_data);
  if (RULE_IS_PRIVATE(rule)) return CALLBACK_CONTINUE;
  Match match;
  match.ns = rule->ns->name;
  match.identifier = rule->identifier;
  const char* tag;
  yr_rule_tags_foreach(rule, tag) { match.tags.push_back(tag); }
  YR_META* meta;
  yr_rule_metas_foreach(rule, meta) {
    External value;
    value.name = meta->identifier;
    if (meta->type == META_TYPE_INTEGER) {
      value.kind = 1;
      value.integer = meta->integer;
    } else if (meta->type == META_TYPE_BOOLEAN) {
      value.kind = 3;
      value.boolean = meta->integer != 0;
    } else {
      value.kind = 0;
      value.text = meta->string ? meta->string : "";
    }
    match.metas.push_back(value);
  }
  work->matches.push_back(match);
  return CALLBACK_CONTINUE;
}

// Files up to this size are read into memory and scanned there rather than mapped: mapping,
// faulting in and unmapping a small file costs more than reading it, and every unmap in a
// process with several threads interrupts the cores running the others (a TLB shootdown).
constexpr size_t kReadWholeBytes = 1 << 20;

// Reads `file` to its end into memory, `size_hint` bytes (its fstat size) to begin with, and scans
// the bytes. Read to the end, not to the fstat size: a file that grew since is scanned as it is
// now, and one whose size says 0 though it has content (procfs, sysfs, some FUSE mounts) is not
// scanned as empty. Sets `*too_large` and scans nothing when it holds more than kReadWholeBytes
// (the caller maps it instead).
int scan_read_file(YR_SCANNER* scanner, int file, size_t size_hint, bool* too_large) {
  size_t capacity = std::min(std::max<size_t>(size_hint + 1, 4096), kReadWholeBytes + 1);
  std::unique_ptr<uint8_t[]> bytes(new (std::nothrow) uint8_t[capacity]);
  size_t length = 0;
  while (bytes) {
    if (length == capacity) {
      if (capacity > kReadWholeBytes) {
        *too_large = true;
        return ERROR_SUCCESS;
      }
      size_t larger = std::min(capacity * 2, kReadWholeBytes + 1);
      std::unique_ptr<uint8_t[]> grown(new (std::nothrow) uint8_t[larger]);
      if (grown) std::memcpy(grown.get(), bytes.get(), length);
      bytes = std::move(grown);
      capacity = larger;
      continue;
    }
    ssize_t got = pread(file, bytes.get() + length, capacity - length, static_cast<off_t>(length));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ERROR_COULD_NOT_OPEN_FILE;
    if (got == 0) break;
    length += static_cast<size_t>(got);
  }
  if (!bytes) return ERROR_INSUFFICIENT_MEMORY;
#if YR_MAJOR_VERSION > 4 || (YR_MAJOR_VERSION == 4 && YR_MINOR_VERSION >= 5)
  // From YARA 4.5 its try/catch guards only faults in the scanned block, which is ours here and
  // cannot shrink: its signal handlers need not be installed around the scan. Before 4.5 it
  // also turns a crash in a module's parsing into an error, so it stays.
  yr_scanner_set_flags(scanner, SCAN_FLAGS_NO_TRYCATCH);
#endif
  return yr_scanner_scan_mem(scanner, bytes.get(), length);
}

void scan_execute(napi_env, void* data) {
  auto* work = static_cast<ScanWork*>(data);
  YR_SCANNER* scanner = nullptr;
  work->result = yr_scanner_create(work->holder->rules, &scanner);
  if (work->result != ERROR_SUCCESS) return;
  yr_scanner_set_callback(scanner, scan_callback, work);
  if (work->timeout_seconds > 0) yr_scanner_set_timeout(scanner, work->timeout_seconds);
  for (const auto& e : work->externals) {
    switch (e.kind) {
      case 0: yr_scanner_define_string_variable(scanner, e.name.c_str(), e.text.c_str()); break;
      case 1: yr_scanner_define_integer_variable(scanner, e.name.c_str(), e.integer); break;
      case 2: yr_scanner_define_float_variable(scanner, e.name.c_str(), e.number); break;
      case 3: yr_scanner_define_boolean_variable(scanner, e.name.c_str(), e.boolean ? 1 : 0); break;
    }
  }
  if (work->use_path) {
    // O_NONBLOCK: opening a FIFO (a file swapped for one after it was listed) must not block a
    // thread of the pool; only a regular file is scanned.
    int file = open(work->path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat info {};
    if (file < 0 || fstat(file, &info) != 0 || !S_ISREG(info.st_mode)) {
      work->result = ERROR_COULD_NOT_OPEN_FILE;
    } else {
      bool too_large = static_cast<size_t>(info.st_size) > kReadWholeBytes;
      if (!too_large)
        work->result = scan_read_file(scanner, file, static_cast<size_t>(info.st_size), &too_large);
      if (too_large) work->result = yr_scanner_scan_fd(scanner, file);
    }
    if (file >= 0) close(file);
  } else {
    work->result = yr_scanner_scan_mem(scanner, work->data, work->length);
  }
  yr_scanner_destroy(scanner);
}

void scan_complete(napi_env env, napi_status, void* data) {
  auto* work = static_cast<ScanWork*>(data);
  if (work->buffer_ref) napi_delete_reference(env, work->buffer_ref);
  work->holder->release();
  if (work->result != ERROR_SUCCESS) {
    napi_value message, error, code;
    std::string text = work->result == ERROR_SCAN_TIMEOUT ? "the scan timed out"
                       : work->result == ERROR_COULD_NOT_OPEN_FILE || work->result == ERROR_COULD_NOT_MAP_FILE
                           ? "cannot read the file"
                           : "libyara error " + std::to_string(work->result);
    napi_create_string_utf8(env, text.c_str(), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, nullptr, message, &error);
    napi_create_int32(env, work->result, &code);
    napi_set_named_property(env, error, "yaraError", code);
    napi_reject_deferred(env, work->deferred, error);
  } else {
    napi_value matches;
    napi_create_array_with_length(env, work->matches.size(), &matches);
    for (size_t i = 0; i < work->matches.size(); i++) {
      const auto& m = work->matches[i];
      napi_value entry, ns, identifier, tags, metadata;
      napi_create_object(env, &entry);
      napi_create_string_utf8(env, m.ns.c_str(), NAPI_AUTO_LENGTH, &ns);
      napi_create_string_utf8(env, m.identifier.c_str(), NAPI_AUTO_LENGTH, &identifier);
      napi_create_array_with_length(env, m.tags.size(), &tags);
      for (size_t t = 0; t < m.tags.size(); t++) {
        napi_value tag;
        napi_create_string_utf8(env, m.tags[t].c_str(), NAPI_AUTO_LENGTH, &tag);
        napi_set_element(env, tags, static_cast<uint32_t>(t), tag);
      }
      napi_create_object(env, &metadata);
      for (const auto& meta : m.metas) {
        napi_value value;
        if (meta.kind == 1) napi_create_int64(env, meta.integer, &value);
        else if (meta.kind == 3) napi_get_boolean(env, meta.boolean, &value);
        else napi_create_string_utf8(env, meta.text.c_str(), NAPI_AUTO_LENGTH, &value);
        napi_set_named_property(env, metadata, meta.name.c_str(), value);
      }
      napi_set_named_property(env, entry, "namespace", ns);
      napi_set_named_property(env, entry, "identifier", identifier);
      napi_set_named_property(env, entry, "tags", tags);
      napi_set_named_property(env, entry, "metadata", metadata);
      napi_set_element(env, matches, static_cast<uint32_t>(i), entry);
    }
    napi_resolve_deferred(env, work->deferred, matches);
  }
  napi_delete_async_work(env, work->work);
  delete work;
}

// scan(rules: External, target: Buffer | string, externals: object, timeoutSeconds: number): Promise
napi_value Scan(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* holder_pointer = nullptr;
  if (napi_get_value_external(env, argv[0], &holder_pointer) != napi_ok) {
    napi_throw_type_error(env, nullptr, "yara-native: scan needs compiled rules");
    return nullptr;
  }
  auto* work = new ScanWork();
  work->holder = static_cast<RulesHolder*>(holder_pointer);
  work->holder->references++;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (type == napi_string) {
    work->use_path = true;
    work->path = get_string(env, argv[1]);
  } else {
    void* data = nullptr;
    size_t length = 0;
    napi_get_buffer_info(env, argv[1], &data, &length);
    work->data = static_cast<const uint8_t*>(data);
    work->length = length;
    napi_create_reference(env, argv[1], 1, &work->buffer_ref);
  }
  read_externals(env, argv[2], &work->externals);
  napi_get_value_int32(env, argv[3], &work->timeout_seconds);
  napi_value promise, name;
  CHECK(napi_create_promise(env, &work->deferred, &promise));
  napi_create_string_utf8(env, "yara-scan", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_create_async_work(env, nullptr, name, scan_execute, scan_complete, work, &work->work));
  CHECK(napi_queue_async_work(env, work->work));
  return promise;
}

napi_value Version(napi_env env, napi_callback_info) {
  napi_value version;
  napi_create_string_utf8(env, YR_VERSION, NAPI_AUTO_LENGTH, &version);
  return version;
}

napi_value Init(napi_env env, napi_value exports) {
  static bool initialized = false;
  if (!initialized) {
    if (yr_initialize() != ERROR_SUCCESS) {
      napi_throw_error(env, nullptr, "yara-native: yr_initialize failed");
      return nullptr;
    }
    initialized = true;
  }
  napi_property_descriptor properties[] = {
      {"compile", nullptr, Compile, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scan", nullptr, Scan, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 3, properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
