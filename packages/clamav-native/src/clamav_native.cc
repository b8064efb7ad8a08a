// FILDES for clamd: passes an open file descriptor to a local clamd over its unix socket
// (SCM_RIGHTS ancillary data, which Node's net module cannot send), so clamd scans the file
// itself whatever its permissions on the path. sendRegularFile opens a file, sends it and closes
// it in one trip to the thread pool (nothing that may block runs on the event loop); memoryFile
// puts bytes held in memory in a sealed memory file (clamd then scans them without a temporary
// file), which sendFileDescriptor sends synchronously and without blocking. Both send on a kept
// IDSESSION socket that Node owns and reads (clamd's reply arrives on it like any other reply of
// the session).
#include <node_api.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>

namespace {

// An Error with `code` and the message `text`.
napi_value make_error(napi_env env, const char* code, const std::string& text) {
  napi_value error_message, error, error_code;
  napi_create_string_utf8(env, text.c_str(), text.size(), &error_message);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &error_code);
  napi_create_error(env, error_code, error_message, &error);
  return error;
}

napi_value throw_errno(napi_env env, const char* code, const std::string& message) {
  napi_throw(env, make_error(env, code, message + ": " + std::strerror(errno)));
  return nullptr;
}

// Sends "zFILDES\0" and one byte carrying `file` in ONE sendmsg (all or nothing on a unix stream
// socket: a session is never left with half a command), without blocking. clamd eats the byte
// after the command's NUL as the one the descriptor came with. Returns nullptr when all of it
// went, else an error code (errno says why): EAGAIN (the socket is full) or ENOTSENT (another
// failure) when nothing went and the session is still in step, ESEND when the session is closed,
// EPARTIAL when part of it went (never seen for 9 bytes; the session is lost).
const char* send_fildes(int sock, int file) {
  char bytes[] = {'z', 'F', 'I', 'L', 'D', 'E', 'S', '\0', '\0'};
  iovec vector{bytes, sizeof(bytes)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
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
  ssize_t sent;
  do {
    sent = sendmsg(sock, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent == static_cast<ssize_t>(sizeof(bytes))) return nullptr;
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return "EAGAIN";
  if (sent >= 0) {
    errno = EIO;
    return "EPARTIAL";
  }
  if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) return "ESEND";
  return "ENOTSENT";  // ENOBUFS, ENOMEM, ETOOMANYREFS, ...
}

// The message for a send_fildes failure `code` whose errno was `error_number`.
std::string send_failure(const char* code, int error_number) {
  const char* what = std::strcmp(code, "EAGAIN") == 0     ? "the session's socket is full"
                     : std::strcmp(code, "ESEND") == 0    ? "clamd's session is closed"
                     : std::strcmp(code, "EPARTIAL") == 0 ? "clamd's socket took part of FILDES"
                                                          : "cannot pass the file descriptor";
  return std::string(what) + ": " + std::strerror(error_number);
}

struct SendFileWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::string path;
  int socket = -1;  // this call's own duplicate of the session's socket, closed with the work
  double max_bytes = 0;
  double size = 0;
  const char* code = nullptr;  // set on failure, with the errno it came with (0: none)
  int error_number = 0;

  SendFileWork() = default;
  SendFileWork(const SendFileWork&) = delete;
  SendFileWork& operator=(const SendFileWork&) = delete;
  ~SendFileWork() {
    if (socket >= 0) close(socket);
  }

  // The error's message, composed on the main thread (strerror is not for the pool's threads).
  std::string message() const {
    if (std::strcmp(code, "EOPEN") == 0) return "cannot open " + path + ": " + std::strerror(error_number);
    if (std::strcmp(code, "ENOTREG") == 0) return "not a regular file: " + path;
    if (std::strcmp(code, "EEMPTY") == 0) return "reports a size of 0 (nothing sent; stream it): " + path;
    if (std::strcmp(code, "ETOOLARGE") == 0) return "larger than the limit: " + path;
    if (std::strcmp(code, "ECANCELED") == 0) return "the send was cancelled before it ran: " + path;
    return send_failure(code, error_number);
  }
};

// On a thread of the pool, a file's whole FILDES: open it without blocking on a FIFO, keep only a
// regular file no larger than max_bytes, clear O_NONBLOCK on it (clamd's reads through the passed
// descriptor are then ordinary reads), send it on the session and close it (clamd holds its own).
// One trip to the pool per file; open, fstat and close, which may block on a slow mount, never
// run on the event loop.
void send_file_execute(napi_env, void* data) {
  auto* work = static_cast<SendFileWork*>(data);
  int fd = open(work->path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat status {};
  if (fd < 0 || fstat(fd, &status) != 0) {
    work->code = "EOPEN";
    work->error_number = errno;
  } else if (!S_ISREG(status.st_mode)) {
    work->code = "ENOTREG";
  } else if (status.st_size == 0) {
    // clamd reads a descriptor by its size: a file that reports 0 though it has content (procfs,
    // sysfs) would be scanned as empty. Nothing is sent; the caller streams what it reads.
    work->code = "EEMPTY";
  } else {
    work->size = static_cast<double>(status.st_size);
    if (work->size > work->max_bytes) {
      work->code = "ETOOLARGE";
    } else {
      int flags = fcntl(fd, F_GETFL);
      if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      work->code = send_fildes(work->socket, fd);
      if (work->code != nullptr) work->error_number = errno;
    }
  }
  if (fd >= 0) close(fd);
  close(work->socket);
  work->socket = -1;
}

void send_file_complete(napi_env env, napi_status status, void* data) {
  auto* work = static_cast<SendFileWork*>(data);
  // Cancelled before it ran: nothing was opened or sent (the duplicate closes with the work).
  if (status == napi_cancelled) work->code = "ECANCELED";
  napi_value size;
  napi_create_double(env, work->size, &size);
  if (work->code != nullptr) {
    napi_value error = make_error(env, work->code, work->message());
    napi_set_named_property(env, error, "size", size);
    napi_reject_deferred(env, work->deferred, error);
  } else {
    napi_resolve_deferred(env, work->deferred, size);
  }
  napi_delete_async_work(env, work->work);
  delete work;
}

// sendRegularFile(socketFd: number, path: string, maxBytes: number): Promise<number>
napi_value SendRegularFile(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int sock = -1;
  double max_bytes = -1;
  size_t length = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || sock < 0 ||
      napi_get_value_string_utf8(env, argv[1], nullptr, 0, &length) != napi_ok ||
      napi_get_value_double(env, argv[2], &max_bytes) != napi_ok || !(max_bytes >= 0)) {
    napi_throw_type_error(env, "EINVAL",
                          "sendRegularFile(socketFd, path, maxBytes) takes a descriptor, a path and a size");
    return nullptr;
  }
  auto* work = new SendFileWork();
  work->path.resize(length);
  napi_get_value_string_utf8(env, argv[1], work->path.data(), length + 1, &length);
  if (work->path.find('\0') != std::string::npos) {
    delete work;
    napi_throw_type_error(env, "EINVAL", "a path with a NUL byte");
    return nullptr;
  }
  // The pool thread sends on a duplicate of its own: were Node to close the session's socket
  // meanwhile (an aborted scan), that number could name another file or socket by then.
  work->socket = fcntl(sock, F_DUPFD_CLOEXEC, 3);
  if (work->socket < 0) {
    int saved = errno;
    delete work;
    errno = saved;
    return throw_errno(env, "ENOTSENT", "cannot pass the file descriptor");
  }
  work->max_bytes = max_bytes;
  napi_value promise, name;
  if (napi_create_promise(env, &work->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "clamd-fildes-send", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, nullptr, name, send_file_execute, send_file_complete, work,
                             &work->work) != napi_ok) {
    delete work;  // nothing queued: the duplicate closes here (a created promise is left unsettled,
                  // and unreferenced once this throws)
    napi_throw_error(env, "ENOTSENT", "cannot queue the send (nothing sent)");
    return nullptr;
  }
  if (napi_queue_async_work(env, work->work) != napi_ok) {
    napi_delete_async_work(env, work->work);
    delete work;
    napi_throw_error(env, "ENOTSENT", "cannot queue the send (nothing sent)");
    return nullptr;
  }
  return promise;
}

// memoryFile(bytes: Uint8Array): number
// A sealed memory file (memfd) holding a copy of `bytes`: clamd scans it through the descriptor
// as it scans a file, without spooling a stream to a temporary file first. Memory only, so it
// runs on the calling thread (the JavaScript side bounds the size).
napi_value MemoryFile(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool is_typed_array = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typed_array) != napi_ok || !is_typed_array) {
    napi_throw_type_error(env, "EINVAL", "memoryFile(bytes) takes a Uint8Array");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer;
  size_t offset = 0;
  napi_get_typedarray_info(env, argv[0], &type, &length, &data, &buffer, &offset);
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "memoryFile(bytes) takes a Uint8Array");
    return nullptr;
  }
  int fd = memfd_create("engine-artifact", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return throw_errno(env, "EMEMFD", "cannot create a memory file");
  const char* next = static_cast<const char*>(data);
  size_t left = length;
  while (left > 0) {
    ssize_t written = write(fd, next, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return throw_errno(env, "EMEMFD", "cannot fill the memory file");
    }
    next += written;
    left -= static_cast<size_t>(written);
  }
  // Sealed: nobody (clamd included) can change what is scanned; its offset back at the start.
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  lseek(fd, 0, SEEK_SET);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

// sendFileDescriptor(socketFd: number, fileFd: number): undefined
// Sends FILDES with `fileFd` (see send_fildes) on the calling thread: for a memory file, which
// no mount can hold up.
napi_value SendFileDescriptor(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int sock = -1;
  int file = -1;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &sock) != napi_ok ||
      napi_get_value_int32(env, argv[1], &file) != napi_ok || sock < 0 || file < 0) {
    napi_throw_type_error(env, "EINVAL", "sendFileDescriptor(socketFd, fileFd) takes two descriptors");
    return nullptr;
  }
  const char* failed = send_fildes(sock, file);
  if (failed != nullptr) napi_throw(env, make_error(env, failed, send_failure(failed, errno)));
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"sendRegularFile", nullptr, SendRegularFile, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sendFileDescriptor", nullptr, SendFileDescriptor, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"memoryFile", nullptr, MemoryFile, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 3, properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
