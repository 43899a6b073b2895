# One image holds the three programs; docker-compose.yml picks which one a container runs.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Afnio.Api -c Release -o /app/api \
 && dotnet publish src/Afnio.Worker -c Release -o /app/worker \
 && dotnet publish migrations/Afnio.Migrations -c Release -o /app/migrator

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production
EXPOSE 8080
USER app
CMD ["dotnet", "/app/api/Afnio.Api.dll"]
