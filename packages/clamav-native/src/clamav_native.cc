// FILDES for clamd: passes an open file descriptor to a local clamd over its unix socket
// (SCM_RIGHTS ancillary data, which Node's net module cannot send), so clamd scans the file
// itself whatever its permissions on the path. The whole exchange runs on the libuv thread
// pool with a socket timeout; the JavaScript side also races the caller's deadline.
#include <node_api.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

struct FildesWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::string socket_path;
  std::string file_path;
  int timeout_ms = 30000;
  std::string reply;
  std::string error;
  std::string error_code;
};

void fail(FildesWork* work, const char* code, const std::string& message) {
  work->error_code = code;
  work->error = message + ": " + std::strerror(errno);
}

void fildes_execute(napi_env, void* data) {
  auto* work = static_cast<FildesWork*>(data);
  // O_NONBLOCK: opening a FIFO (a file swapped for one after it was listed) must not block a
  // thread of the pool; only a regular file is passed to clamd.
  int file = open(work->file_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (file < 0) return fail(work, "EFILE", "cannot open " + work->file_path);
  struct stat info {};
  if (fstat(file, &info) != 0 || !S_ISREG(info.st_mode)) {
    close(file);
    errno = EINVAL;
    return fail(work, "EFILE", "not a regular file: " + work->file_path);
  }
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    close(file);
    return fail(work, "ESOCKET", "cannot create a socket");
  }
  timeval timeout{work->timeout_ms / 1000, (work->timeout_ms % 1000) * 1000};
  setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, work->socket_path.c_str(), sizeof(address.sun_path) - 1);
  if (connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    fail(work, "ECONNECT", "cannot connect to " + work->socket_path);
  } else {
    const char command[] = "zFILDES";
    // The command with its NUL terminator, then one byte carrying the descriptor.
    if (send(sock, command, sizeof(command), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(command))) {
      fail(work, "ESEND", "cannot send FILDES");
    } else {
      char byte = 0;
      iovec vector{&byte, 1};
      char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr message{};
      message.msg_iov = &vector;
      message.msg_iovlen = 1;
      message.msg_control = control;
      message.msg_controllen = sizeof(control);
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(header), &file, sizeof(int));
      if (sendmsg(sock, &message, MSG_NOSIGNAL) != 1) {
        fail(work, "ESEND", "cannot pass the file descriptor");
      } else {
        char buffer[4096];
        for (;;) {
          ssize_t got = recv(sock, buffer, sizeof(buffer), 0);
          if (got < 0) {
            fail(work, errno == EAGAIN || errno == EWOULDBLOCK ? "ETIMEOUT" : "ERECV", "no reply from clamd");
            break;
          }
          if (got == 0) break;
          work->reply.append(buffer, static_cast<size_t>(got));
          if (work->reply.find('\0') != std::string::npos) break;
          if (work->reply.size() > 1024 * 1024) break;
        }
      }
    }
  }
  close(sock);
  close(file);
}

void fildes_complete(napi_env env, napi_status, void* data) {
  auto* work = static_cast<FildesWork*>(data);
  if (!work->error.empty()) {
    napi_value message, error, code;
    napi_create_string_utf8(env, work->error.c_str(), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, nullptr, message, &error);
    napi_create_string_utf8(env, work->error_code.c_str(), NAPI_AUTO_LENGTH, &code);
    napi_set_named_property(env, error, "code", code);
    napi_reject_deferred(env, work->deferred, error);
  } else {
    size_t end = work->reply.find('\0');
    std::string text = end == std::string::npos ? work->reply : work->reply.substr(0, end);
    napi_value reply;
    napi_create_string_utf8(env, text.c_str(), text.size(), &reply);
    napi_resolve_deferred(env, work->deferred, reply);
  }
  napi_delete_async_work(env, work->work);
  delete work;
}

std::string get_string(napi_env env, napi_value value) {
  size_t length = 0;
  napi_get_value_string_utf8(env, value, nullptr, 0, &length);
  std::string result(length, '\0');
  napi_get_value_string_utf8(env, value, result.data(), length + 1, &length);
  return result;
}

// scanFileDescriptor(socketPath: string, filePath: string, timeoutMs: number): Promise<string>
napi_value ScanFileDescriptor(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  auto* work = new FildesWork();
  work->socket_path = get_string(env, argv[0]);
  work->file_path = get_string(env, argv[1]);
  napi_get_value_int32(env, argv[2], &work->timeout_ms);
  if (work->timeout_ms < 1) work->timeout_ms = 1;
  napi_value promise, name;
  napi_create_promise(env, &work->deferred, &promise);
  napi_create_string_utf8(env, "clamd-fildes", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, fildes_execute, fildes_complete, work, &work->work);
  napi_queue_async_work(env, work->work);
  return promise;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor property = {"scanFileDescriptor", nullptr, ScanFileDescriptor, nullptr, nullptr, nullptr, napi_default, nullptr};
  napi_define_properties(env, exports, 1, &property);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
