// @platformatic/kafka asks for Node 22, whose Promise.withResolvers it uses; the test machines
// may run Node 20. Imported before the client, this adds the one missing function.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}
