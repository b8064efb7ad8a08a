// The test app of nextUploadGuard: the engine's packages stay outside the bundle (they load
// native add-ons and worker threads), as the package README tells users.
export default {
  serverExternalPackages: ["@engine/upload", "@engine/core", "file-type", "@fastify/busboy"],
};
